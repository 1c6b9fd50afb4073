package dev.moe4j.core.quant;

import dev.moe4j.core.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * ggml's Q5_K: Q4_K's layout with a fifth bit per code: F16 {@code d} and {@code dmin}, 12 bytes of packed 6-bit
 * scales and minimums, 32 bytes {@code qh} of high bits, 128 bytes of low nibbles (176 bytes per 256 elements).
 * For the 64 elements of nibble run p, the high bit of element l (low nibble) is bit 2p of qh[l] and of element
 * 32 + l (high nibble) bit 2p + 1.
 */
final class Q5KCodec implements BlockCodec {
    static final Q5KCodec INSTANCE = new Q5KCodec();
    static final int BYTES = 176;
    private static final int HIGH_BITS = 4 + KQuants.SCALE_BYTES;
    private static final int CODES = HIGH_BITS + 32;

    private Q5KCodec() {
    }

    @Override
    public DType type() {
        return DType.Q5_K;
    }

    @Override
    public void dequantize(MemorySegment src, long offset, float[] dst, int dstOffset, int blocks) {
        KQuants.dequantizeScaleMin(src, offset, BYTES, CODES, HIGH_BITS, dst, dstOffset, blocks);
    }

    @Override
    public void quantize(float[] src, int srcOffset, MemorySegment dst, long offset, int blocks) {
        int[] codes = new int[KQuants.SUPER_BLOCK];
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * BYTES;
            KQuants.quantizeScaleMin(src, srcOffset + b * KQuants.SUPER_BLOCK, 31, -0.5f, 0.1f, 15, dst, block,
                    codes);
            byte[] high = new byte[32];
            for (int pair = 0; pair < 4; pair++) {
                for (int l = 0; l < 32; l++) {
                    int lo = codes[64 * pair + l];
                    int hi = codes[64 * pair + 32 + l];
                    high[l] |= (byte) ((lo >>> 4) << (2 * pair) | (hi >>> 4) << (2 * pair + 1));
                    dst.set(ValueLayout.JAVA_BYTE, block + CODES + 32L * pair + l, (byte) (lo & 0xF | (hi & 0xF) << 4));
                }
            }
            MemorySegment.copy(high, 0, dst, ValueLayout.JAVA_BYTE, block + HIGH_BITS, 32);
        }
    }
}
