package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * ggml's Q4_0: 32 elements as an F16 scale {@code d} followed by 16 bytes of 4-bit codes; element = (code - 8)·d.
 * Byte {@code j} holds element {@code j} in its low nibble and element {@code j + 16} in its high nibble.
 *
 * <p>The scale is the block's signed extreme over -8, so that extreme is stored exactly as code 0 and the other
 * side reaches code 15 (+7·|d|) at most: sixteen levels, none wasted on a symmetric range.
 */
final class Q4Codec implements BlockCodec {
    static final Q4Codec INSTANCE = new Q4Codec();
    static final int ELEMENTS = 32;
    static final int BYTES = 18;

    private Q4Codec() {
    }

    @Override
    public DType type() {
        return DType.Q4_0;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, block));
            int o = dstOffset + b * ELEMENTS;
            for (int j = 0; j < ELEMENTS / 2; j++) {
                int q = src.get(ValueLayout.JAVA_BYTE, block + 2 + j) & 0xFF;
                dst[o + j] = ((q & 0xF) - 8) * d;
                dst[o + j + ELEMENTS / 2] = ((q >>> 4) - 8) * d;
            }
        }
    }

    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            int o = srcOffset + b * ELEMENTS;
            float amax = 0;
            float extreme = 0;
            for (int j = 0; j < ELEMENTS; j++) {
                // the first element of the largest magnitude decides the sign, as in ggml
                if (amax < Math.abs(src[o + j])) {
                    amax = Math.abs(src[o + j]);
                    extreme = src[o + j];
                }
            }
            float d = extreme / -8;
            float id = d != 0 ? 1 / d : 0;
            long block = offset + (long) b * BYTES;
            dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, block, Float.floatToFloat16(d));
            for (int j = 0; j < ELEMENTS / 2; j++) {
                int lo = code(src[o + j] * id);
                int hi = code(src[o + j + ELEMENTS / 2] * id);
                dst.set(ValueLayout.JAVA_BYTE, block + 2 + j, (byte) (lo | hi << 4));
            }
        }
    }

    /** ggml adds 8.5 and truncates (rounding halves up, not away from zero), then caps the far side at 15. */
    private static int code(float scaled) {
        return Math.min(15, (byte) (int) (scaled + 8.5f));
    }
}
