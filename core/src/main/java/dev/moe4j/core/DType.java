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
 *
 * <p>The last constants are block-quantised types, which safetensors does not store: a block of
 * {@link #blockElements()} consecutive elements of a row is {@link #blockBytes()} bytes (scales and packed codes;
 * {@code dev.moe4j.core.quant.BlockCodec} reads and writes them). A tensor of them holds whole blocks in every row.
 * All but one are ggml's, laid out as ggml lays them out, which GGUF files store. {@link #F8_E4M3_B32} is moe4j's
 * own: the FP8 weights of DeepSeek-V3 or Qwen3-FP8 checkpoints (E4M3 codes with one scale per 128×128 tile, held in a
 * separate {@code weight_scale_inv} tensor) repacked at load so that each row's 32 codes carry their scale.
 */
public enum DType {
    BOOL(8), F4(4), F6_E2M3(6), F6_E3M2(6), U8(8), I8(8),
    F8_E5M2(8), F8_E4M3(8), F8_E8M0(8), F8_E4M3FNUZ(8), F8_E5M2FNUZ(8),
    I16(16), U16(16), F16(16), BF16(16),
    I32(32), U32(32), F32(32),
    C64(64), F64(64), I64(64), U64(64),
    // ggml's block-quantised types: elements per block, bytes per block
    Q8_0(32, 34), Q4_0(32, 18), Q4_K(256, 144), Q5_K(256, 176), Q6_K(256, 210), MXFP4(32, 17),
    // moe4j's in-memory form of block-scaled FP8 checkpoints: an F32 scale, then 32 E4M3 codes
    F8_E4M3_B32(32, 36);

    private final int bits;
    private final int blockElements;
    private final int blockBytes;

    DType(int bits) {
        this.bits = bits;
        this.blockElements = 0;
        this.blockBytes = 0;
    }

    DType(int blockElements, int blockBytes) {
        this.bits = 0;
        this.blockElements = blockElements;
        this.blockBytes = blockBytes;
    }

    /** Bits per element (4 and 6 for the packed F4/F6 types); block-quantised types have no whole number. */
    public int bits() {
        if (isBlockQuantized()) {
            throw new UnsupportedOperationException(this + " stores " + blockBytes + " bytes per " + blockElements
                    + " elements; use byteCount");
        }
        return bits;
    }

    /** Bytes per element; the packed sub-byte and block types have none, ask {@link #byteCount} for those. */
    public int byteSize() {
        if (isBlockQuantized() || bits % 8 != 0) {
            throw new UnsupportedOperationException(this + " is a packed type; use byteCount");
        }
        return bits / 8;
    }

    /** True for F4 and F6, whose elements are packed several to a byte. */
    public boolean isSubByte() {
        return !isBlockQuantized() && bits < 8;
    }

    /** True for ggml's block-quantised types (Q8_0, Q4_K, MXFP4, ...), which only GGUF files hold. */
    public boolean isBlockQuantized() {
        return blockElements > 0;
    }

    /** Elements per block of a block-quantised type; 1 for the others. */
    public int blockElements() {
        return isBlockQuantized() ? blockElements : 1;
    }

    /** Bytes per block of a block-quantised type. */
    public int blockBytes() {
        if (!isBlockQuantized()) {
            throw new UnsupportedOperationException(this + " is not block-quantised");
        }
        return blockBytes;
    }

    /**
     * Bytes that {@code elements} elements occupy; for the packed types that must be a whole number, and for the
     * block types a whole number of blocks.
     *
     * @throws IllegalArgumentException when the elements do not fill whole bytes or blocks
     * @throws ArithmeticException when the size overflows a long
     */
    public long byteCount(long elements) {
        if (isBlockQuantized()) {
            if (elements % blockElements != 0) {
                throw new IllegalArgumentException(elements + " elements of " + this + " are not whole blocks of "
                        + blockElements);
            }
            return Math.multiplyExact(elements / blockElements, (long) blockBytes);
        }
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
