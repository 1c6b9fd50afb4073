package dev.moe4j.core;

import java.util.Locale;

/**
 * Element types of a {@link Tensor}. The set and the names are those of the safetensors format, so that any
 * checkpoint can be read and described; the kernels compute with F32 and read BF16/F16 weights directly.
 */
public enum DType {
    BOOL(1), U8(1), I8(1), F8_E5M2(1), F8_E4M3(1), F8_E8M0(1),
    I16(2), U16(2), F16(2), BF16(2),
    I32(4), U32(4), F32(4),
    F64(8), I64(8), U64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** True for the floating-point types the kernels read as weights or activations. */
    public boolean isKernelFloat() {
        return this == F32 || this == BF16 || this == F16;
    }

    /** Looks a type up by its safetensors name ("F32", "BF16", ...), case-insensitively. */
    public static DType parse(String name) {
        try {
            return valueOf(name.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new BadInputException("unknown dtype '" + name + "'; expected one of "
                    + java.util.Arrays.toString(values()));
        }
    }
}
