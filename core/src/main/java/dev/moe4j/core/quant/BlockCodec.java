package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;

/**
 * Reads and writes the blocks of one of ggml's block-quantised types, in ggml's byte layout, so that a GGUF file's
 * tensor data is used as it is stored. Each block is {@link DType#blockBytes()} bytes encoding
 * {@link DType#blockElements()} consecutive elements of a row.
 *
 * <p>Decoding gives what ggml's own dequantisation gives, bit for bit; encoding follows ggml's reference quantiser
 * for the type (bit for bit for the types whose quantiser has no search: Q8_0, Q4_0, MXFP4).
 */
public sealed interface BlockCodec permits Q8Codec {

    /** The type whose blocks this codec reads and writes. */
    DType type();

    /**
     * Decodes {@code blocks} consecutive blocks, the first at byte {@code offset} of {@code src}, into
     * {@code dst[dstOffset ..]}.
     */
    void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks);

    /**
     * Encodes {@code src[srcOffset ..]} as {@code blocks} consecutive blocks written from byte {@code offset} of
     * {@code dst}.
     */
    void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks);

    /** The codec of a block-quantised type. */
    static BlockCodec of(DType type) {
        return switch (type) {
            case Q8_0 -> Q8Codec.INSTANCE;
            default -> throw new IllegalArgumentException(type + " has no block codec"
                    + (type.isBlockQuantized() ? " yet" : ": it is not block-quantised"));
        };
    }

    /** C's {@code roundf}: halves away from zero (Java's {@link Math#round} takes them up), exact for any float. */
    static int roundHalfAway(float v) {
        return (int) Math.copySign(Math.floor(Math.abs((double) v) + 0.5), v);
    }
}
