package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * {@link DType#F8_E4M3_B32}: 32 elements as an F32 scale {@code d} followed by 32 FP8 E4M3 codes (OCP's "fn"
 * variant: bias 7, no infinities, 0x7F and 0xFF are NaN, largest finite value 448); element = e4m3(code)·d, one
 * float rounding, as {@code weight.float() * scale_inv} computes it for a block-scaled FP8 checkpoint.
 */
public final class E4m3BlockCodec implements BlockCodec {
    static final E4m3BlockCodec INSTANCE = new E4m3BlockCodec();
    static final int ELEMENTS = 32;
    static final int BYTES = 36;
    /** The largest finite E4M3 value. */
    public static final float MAX = 448f;
    private static final float[] VALUES = values();

    private E4m3BlockCodec() {
    }

    @Override
    public DType type() {
        return DType.F8_E4M3_B32;
    }

    /** The value of an E4M3 code (NaN for 0x7F and 0xFF). */
    public static float value(int code) {
        return VALUES[code & 0xFF];
    }

    /** Whether a code is one of E4M3's two NaNs. */
    public static boolean isNaN(int code) {
        return (code & 0x7F) == 0x7F;
    }

    private static float[] values() {
        float[] v = new float[256];
        for (int code = 0; code < 256; code++) {
            int exponent = code >>> 3 & 0xF, mantissa = code & 7;
            double magnitude = exponent == 0 ? mantissa / 8.0 * 0x1p-6 : (1 + mantissa / 8.0) * Math.scalb(1.0, exponent - 7);
            v[code] = isNaN(code) ? Float.NaN : (float) ((code & 0x80) != 0 ? -magnitude : magnitude);
        }
        return v;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            float d = src.get(ValueLayout.JAVA_FLOAT_UNALIGNED, block);
            int o = dstOffset + b * ELEMENTS;
            for (int j = 0; j < ELEMENTS; j++) {
                dst[o + j] = VALUES[src.get(ValueLayout.JAVA_BYTE, block + 4 + j) & 0xFF] * d;
            }
        }
    }

    /** Scales each block so that its largest magnitude is 448, then rounds every element to E4M3. */
    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            int o = srcOffset + b * ELEMENTS;
            float amax = BlockCodec.absMax(src, o, ELEMENTS);
            float d = amax / MAX;
            long block = offset + (long) b * BYTES;
            dst.set(ValueLayout.JAVA_FLOAT_UNALIGNED, block, d);
            for (int j = 0; j < ELEMENTS; j++) {
                dst.set(ValueLayout.JAVA_BYTE, block + 4 + j, (byte) (d == 0 ? 0 : encode(src[o + j] / d)));
            }
        }
    }

    /**
     * The E4M3 code nearest {@code x}, ties to even; magnitudes beyond 448 saturate to 448 (a NaN stays NaN).
     */
    public static int encode(float x) {
        int sign = Float.floatToRawIntBits(x) >>> 24 & 0x80;
        float a = Math.abs(x);
        if (Float.isNaN(x)) {
            return 0x7F | sign;
        }
        if (a >= MAX) {
            return 0x7E | sign;
        }
        if (a < 0x1p-6f) {
            // subnormal codes step by 2^-9; 8 steps reach the smallest normal, whose code is 8
            return (int) Math.rint(a * 0x1p9f) | sign;
        }
        int bits = Float.floatToRawIntBits(a);
        // keep 3 of float's 23 mantissa bits, rounding half to even; a carry moves into the exponent
        int rounded = bits + (1 << 19) - 1 + (bits >>> 20 & 1) >>> 20;
        int code = rounded - ((127 - 7) << 3);
        return Math.min(code, 0x7E) | sign;
    }
}
