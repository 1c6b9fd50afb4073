package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * ggml's Q4_K: a super-block of 256 elements in 144 bytes: F16 {@code d} and {@code dmin}, eight 6-bit scales and
 * minimums packed in 12 bytes ({@link KQuants#packedScale}), then 128 bytes of 4-bit codes. Element i of
 * sub-block j (32 elements) = d·scale_j·code - dmin·min_j. Each 32-byte run of codes serves 64 elements: the
 * first 32 in the low nibbles, the next 32 in the high nibbles.
 */
final class Q4KCodec implements BlockCodec {
    static final Q4KCodec INSTANCE = new Q4KCodec();
    static final int BYTES = 144;
    private static final int CODES = 4 + KQuants.SCALE_BYTES;

    private Q4KCodec() {
    }

    @Override
    public DType type() {
        return DType.Q4_K;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        KQuants.dequantizeScaleMin(src, offset, BYTES, CODES, -1, dst, dstOffset, blocks);
    }

    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        int[] codes = new int[KQuants.SUPER_BLOCK];
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            KQuants.quantizeScaleMin(src, srcOffset + b * KQuants.SUPER_BLOCK, 15, -1f, 0.1f, 20, dst, block, codes);
            for (int pair = 0; pair < 4; pair++) {
                for (int l = 0; l < 32; l++) {
                    int lo = codes[64 * pair + l];
                    int hi = codes[64 * pair + 32 + l];
                    dst.set(ValueLayout.JAVA_BYTE, block + CODES + 32L * pair + l, (byte) (lo | hi << 4));
                }
            }
        }
    }
}
