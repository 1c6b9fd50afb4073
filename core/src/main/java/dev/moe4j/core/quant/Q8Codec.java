package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * ggml's Q8_0: 32 elements as an F16 scale {@code d} followed by 32 signed bytes {@code q}; element = q·d. The scale
 * is the block's largest magnitude over 127, so the largest element is stored exactly as ±127·d.
 */
final class Q8Codec implements BlockCodec {
    static final Q8Codec INSTANCE = new Q8Codec();
    static final int ELEMENTS = 32;
    static final int BYTES = 34;

    private Q8Codec() {
    }

    @Override
    public DType type() {
        return DType.Q8_0;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, block));
            int o = dstOffset + b * ELEMENTS;
            for (int j = 0; j < ELEMENTS; j++) {
                dst[o + j] = src.get(ValueLayout.JAVA_BYTE, block + 2 + j) * d;
            }
        }
    }

    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            int o = srcOffset + b * ELEMENTS;
            float amax = BlockCodec.absMax(src, o, ELEMENTS);
            // ggml divides by the F32 scale and stores the scale rounded to F16 afterwards
            float d = amax / 127;
            float id = d != 0 ? 1 / d : 0;
            long block = offset + (long) b * BYTES;
            dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, block, Float.floatToFloat16(d));
            for (int j = 0; j < ELEMENTS; j++) {
                dst.set(ValueLayout.JAVA_BYTE, block + 2 + j, (byte) BlockCodec.roundHalfAway(src[o + j] * id));
            }
        }
    }
}
