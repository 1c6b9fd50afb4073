package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;

/**
 * Reads and writes the blocks of a block-quantised type: ggml's in ggml's byte layout, so that a GGUF file's tensor
 * data is used as it is stored, and moe4j's repacked FP8 ({@link E4m3BlockCodec}). Each block is
 * {@link DType#blockBytes()} bytes encoding {@link DType#blockElements()} consecutive elements of a row.
 *
 * <p>For ggml's types, decoding gives what ggml's own dequantisation gives, bit for bit; encoding follows ggml's
 * reference quantiser for the type (quantize_row_*_ref, no importance matrix), operation for operation, so the blocks
 * are ggml's too. The fixtures under core's test resources, made by ggml itself, check both.
 */
public sealed interface BlockCodec permits Q8Codec, Q4Codec, Mxfp4Codec, Q4KCodec, Q5KCodec, Q6KCodec,
        E4m3BlockCodec {

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
            case Q4_0 -> Q4Codec.INSTANCE;
            case MXFP4 -> Mxfp4Codec.INSTANCE;
            case Q4_K -> Q4KCodec.INSTANCE;
            case Q5_K -> Q5KCodec.INSTANCE;
            case Q6_K -> Q6KCodec.INSTANCE;
            case F8_E4M3_B32 -> E4m3BlockCodec.INSTANCE;
            default -> throw new IllegalArgumentException(type + " has no block codec: it is not block-quantised");
        };
    }

    /** The largest magnitude of {@code src[from .. from + n)}: what a block's scale is made from. */
    static float absMax(float[] src, int from, int n) {
        float amax = 0;
        for (int j = 0; j < n; j++) {
            amax = Math.max(amax, Math.abs(src[from + j]));
        }
        return amax;
    }

    /** C's {@code roundf}: halves away from zero (Java's {@link Math#round} takes them up), exact for any float. */
    static int roundHalfAway(float v) {
        return (int) Math.copySign(Math.floor(Math.abs((double) v) + 0.5), v);
    }
}
