package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * MXFP4 (OCP microscaling FP4) as ggml stores it: 32 elements as one E8M0 exponent byte {@code e} followed by 16
 * bytes of 4-bit E2M1 codes, element {@code j} in the low nibble of byte {@code j} and element {@code j + 16} in the
 * high nibble. ggml keeps the E2M1 values doubled as integers ({@link #VALUES}) and halves the scale instead
 * ({@code 2^(e-128)}), so element = VALUES[code]·2^(e-128) = E2M1[code]·2^(e-127).
 */
public final class Mxfp4Codec implements BlockCodec {
    static final Mxfp4Codec INSTANCE = new Mxfp4Codec();
    static final int ELEMENTS = 32;
    static final int BYTES = 17;
    /** E2M1's values times two, indexed by code: sign in bit 3. */
    static final int[] VALUES = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

    private Mxfp4Codec() {
    }

    @Override
    public DType type() {
        return DType.MXFP4;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            float d = halfScale(src.get(ValueLayout.JAVA_BYTE, block) & 0xFF);
            int o = dstOffset + b * ELEMENTS;
            for (int j = 0; j < ELEMENTS / 2; j++) {
                int q = src.get(ValueLayout.JAVA_BYTE, block + 1 + j) & 0xFF;
                dst[o + j] = VALUES[q & 0xF] * d;
                dst[o + j + ELEMENTS / 2] = VALUES[q >>> 4] * d;
            }
        }
    }

    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            int o = srcOffset + b * ELEMENTS;
            float amax = BlockCodec.absMax(src, o, ELEMENTS);
            // the largest E2M1 value, 6 = 1.5·2^2, lands in [4, 8)·2^(e-127): the block's extreme keeps 2 bits
            // of exponent room and may round down to 6 (ggml's choice; the largest magnitude is not stored exactly)
            int e = amax > 0 ? (byte) (int) ((float) Math.floor(log2f(amax)) - 2 + 127) & 0xFF : 0;
            float d = halfScale(e);
            long block = offset + (long) b * BYTES;
            dst.set(ValueLayout.JAVA_BYTE, block, (byte) e);
            for (int j = 0; j < ELEMENTS / 2; j++) {
                int lo = nearestCode(src[o + j], d);
                int hi = nearestCode(src[o + j + ELEMENTS / 2], d);
                dst.set(ValueLayout.JAVA_BYTE, block + 1 + j, (byte) (lo | hi << 4));
            }
        }
    }

    /** The scale ggml multiplies the doubled values by: 2^(e - 128) for the E8M0 byte e, subnormal for e = 0 and 1. */
    public static float halfScale(int e) {
        return Float.intBitsToFloat(e < 2 ? 0x00200000 << e : (e - 1) << 23);
    }

    /** The doubled E2M1 value of a 4-bit code. */
    public static int value(int code) {
        return VALUES[code];
    }

    /** The code whose value is nearest {@code x}; a tie goes to the lower code, so zero is +0, as in ggml. */
    private static int nearestCode(float x, float d) {
        int best = 0;
        float bestError = Math.abs(VALUES[0] * d - x);
        for (int i = 1; i < VALUES.length; i++) {
            float error = Math.abs(VALUES[i] * d - x);
            if (error < bestError) {
                best = i;
                bestError = error;
            }
        }
        return best;
    }

    /**
     * C's {@code log2f}: the base-2 logarithm rounded to float. Computed in double and rounded once, so that a
     * value just below a power of two whose logarithm rounds up to the integer gives that integer, as the C
     * library's does (the fixture from ggml holds such values).
     */
    private static float log2f(float x) {
        return (float) (Math.log(x) / LN2);
    }

    private static final double LN2 = Math.log(2);
}
