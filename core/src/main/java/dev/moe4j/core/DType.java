package dev.moe4j.core;

import java.util.Locale;

/**
 * Element types of a {@link Tensor}. The set and the names are those of the safetensors format, so that any
 * checkpoint can be read and described; the kernels compute with F32 and read BF16/F16 weights directly.
 *
 * <p>The constants are declared in the order of the reference safetensors implementation (increasing alignment),
 * because its writer lays tensors out by descending dtype in that order; moe4j's writer relies on
 * {@link #ordinal()} to do the same. F4 and F6 are packed sub-byte types: a tensor of them must hold a whole
 * number of bytes.
 */
public enum DType {
    BOOL(8), F4(4), F6_E2M3(6), F6_E3M2(6), U8(8), I8(8),
    F8_E5M2(8), F8_E4M3(8), F8_E8M0(8), F8_E4M3FNUZ(8), F8_E5M2FNUZ(8),
    I16(16), U16(16), F16(16), BF16(16),
    I32(32), U32(32), F32(32),
    C64(64), F64(64), I64(64), U64(64);

    private final int bits;

    DType(int bits) {
        this.bits = bits;
    }

    /** Bits per element (4 and 6 for the packed F4/F6 types). */
    public int bits() {
        return bits;
    }

    /** Bytes per element; the packed sub-byte types have none, ask {@link #byteCount} for those. */
    public int byteSize() {
        if (bits % 8 != 0) {
            throw new UnsupportedOperationException(this + " is a packed " + bits + "-bit type; use byteCount");
        }
        return bits / 8;
    }

    /** True for F4 and F6, whose elements are packed several to a byte. */
    public boolean isSubByte() {
        return bits < 8;
    }

    /**
     * Bytes that {@code elements} elements occupy; for the packed types that must be a whole number.
     *
     * @throws IllegalArgumentException when the elements do not fill whole bytes
     * @throws ArithmeticException when the size overflows a long
     */
    public long byteCount(long elements) {
        long totalBits = Math.multiplyExact(elements, (long) bits);
        if (totalBits % 8 != 0) {
            throw new IllegalArgumentException(elements + " elements of " + this + " are " + totalBits
                    + " bits, not a whole number of bytes");
        }
        return totalBits / 8;
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
