package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * ggml's Q6_K: a super-block of 256 elements in 210 bytes: 128 bytes {@code ql} of low nibbles, 64 bytes
 * {@code qh} of 2-bit high parts, 16 signed 8-bit scales (one per 16 elements), then the F16 {@code d}. Element =
 * d·scale·(code - 32) with 6-bit codes. Each half of 128 elements uses 64 bytes of ql and 32 of qh: element l
 * (l &lt; 32) and its companions l+32, l+64, l+96 take the low and high nibbles of ql[l] and ql[l+32] and the four
 * 2-bit fields of qh[l].
 */
final class Q6KCodec implements BlockCodec {
    static final Q6KCodec INSTANCE = new Q6KCodec();
    static final int BYTES = 210;
    private static final int HIGH = 128;
    private static final int SCALES = HIGH + 64;
    private static final int D = SCALES + 16;

    private Q6KCodec() {
    }

    @Override
    public DType type() {
        return DType.Q6_K;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            float d = KQuants.f16(src, block + D);
            int y = dstOffset + b * KQuants.SUPER_BLOCK;
            for (int half = 0; half < 2; half++) {
                long ql = block + 64L * half;
                long qh = block + HIGH + 32L * half;
                long sc = block + SCALES + 8L * half;
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int low0 = src.get(ValueLayout.JAVA_BYTE, ql + l) & 0xFF;
                    int low1 = src.get(ValueLayout.JAVA_BYTE, ql + l + 32) & 0xFF;
                    int high = src.get(ValueLayout.JAVA_BYTE, qh + l) & 0xFF;
                    int q1 = (low0 & 0xF | (high & 3) << 4) - 32;
                    int q2 = (low1 & 0xF | (high >>> 2 & 3) << 4) - 32;
                    int q3 = (low0 >>> 4 | (high >>> 4 & 3) << 4) - 32;
                    int q4 = (low1 >>> 4 | (high >>> 6 & 3) << 4) - 32;
                    dst[y + l] = d * src.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                    dst[y + l + 32] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                    dst[y + l + 64] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                    dst[y + l + 96] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                }
                y += 128;
            }
        }
    }

    /**
     * ggml's reference: each group of 16 gets a symmetric scale from {@link KQuants#fitSymmetricScale}; the scales
     * are quantised to 8 bits against the one of largest magnitude (stored as -128, so d takes its sign), and the
     * codes are chosen again against the scales as stored.
     */
    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        int[] codes = new int[KQuants.SUPER_BLOCK];
        float[] scales = new float[16];
        byte[] packed = new byte[BYTES];
        for (int b = 0; b < blocks; b++) {
            int x = srcOffset + b * KQuants.SUPER_BLOCK;
            long block = offset + (long) b * BYTES;
            float maxScale = 0;
            float maxAbsScale = 0;
            for (int g = 0; g < 16; g++) {
                scales[g] = KQuants.fitSymmetricScale(16, 32, src, x + 16 * g, codes, 16 * g);
                if (Math.abs(scales[g]) > maxAbsScale) {
                    maxAbsScale = Math.abs(scales[g]);
                    maxScale = scales[g];
                }
            }
            java.util.Arrays.fill(packed, (byte) 0);
            if (maxAbsScale < KQuants.GROUP_MAX_EPS) {
                MemorySegment.copy(packed, 0, dst, ValueLayout.JAVA_BYTE, block, BYTES);
                continue;
            }
            float iscale = -128f / maxScale;
            float d = KQuants.putF16(dst, block + D, 1 / iscale);
            for (int g = 0; g < 16; g++) {
                byte scale = (byte) Math.min(127, KQuants.nearestInt(iscale * scales[g]));
                packed[SCALES + g] = scale;
                float step = d * scale;
                if (step == 0) {
                    continue;
                }
                for (int i = 0; i < 16; i++) {
                    int l = KQuants.nearestInt(src[x + 16 * g + i] / step);
                    codes[16 * g + i] = Math.max(-32, Math.min(31, l)) + 32;
                }
            }
            for (int half = 0; half < 2; half++) {
                int c = 128 * half;
                for (int l = 0; l < 32; l++) {
                    int q1 = codes[c + l];
                    int q2 = codes[c + l + 32];
                    int q3 = codes[c + l + 64];
                    int q4 = codes[c + l + 96];
                    packed[64 * half + l] = (byte) (q1 & 0xF | (q3 & 0xF) << 4);
                    packed[64 * half + l + 32] = (byte) (q2 & 0xF | (q4 & 0xF) << 4);
                    packed[HIGH + 32 * half + l] = (byte) (q1 >>> 4 | (q2 >>> 4) << 2 | (q3 >>> 4) << 4 | (q4 >>> 4) << 6);
                }
            }
            MemorySegment.copy(packed, 0, dst, ValueLayout.JAVA_BYTE, block, D);
        }
    }
}
