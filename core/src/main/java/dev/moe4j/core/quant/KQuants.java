package dev.moe4j.core.quant;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The arithmetic ggml's K-quants share: super-blocks of 256 elements split into sub-blocks, each with its own scale
 * (and, for Q4_K and Q5_K, its own minimum) quantised against one F16 scale per super-block.
 *
 * <p>The searches below repeat ggml's reference quantiser operation for operation in float, in the same order, so
 * that they reach the same choices: the scales they find are only as good as the search, and a different summation
 * order would pick other codes on near ties.
 */
public final class KQuants {
    public static final int SUPER_BLOCK = 256;
    /** Bytes of the packed 6-bit scales and minimums of Q4_K and Q5_K's eight sub-blocks. */
    static final int SCALE_BYTES = 12;
    /** Below this a group counts as all zero. */
    static final float GROUP_MAX_EPS = 1e-15f;

    private KQuants() {
    }

    /**
     * Rounds to the nearest integer, halves to even, by adding 1.5·2^23 and reading the low mantissa bits, as ggml
     * does; exact for |v| below 2^22, and what ggml gives beyond that.
     */
    static int nearestInt(float v) {
        int bits = Float.floatToRawIntBits(v + 12582912f);
        return (bits & 0x007fffff) - 0x00400000;
    }

    static float f16(MemorySegment src, long offset) {
        return Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, offset));
    }

    /** Writes {@code v} as F16 (rounded to nearest even, as ggml) and gives back the value stored. */
    static float putF16(MemorySegment dst, long offset, float v) {
        short h = Float.floatToFloat16(v);
        dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset, h);
        return Float.float16ToFloat(h);
    }

    /**
     * Decodes Q4_K or Q5_K super-blocks (scales and minimums at byte 4, codes at {@code codes}): element = d·scale·code
     * − dmin·min per 32-element sub-block, where code is a nibble, plus for Q5_K (a {@code fifthBits} offset, or −1
     * for Q4_K) bit 2p (low nibbles) or 2p + 1 (high nibbles) of the fifth-bit byte of its position, times 16.
     */
    static void dequantizeScaleMin(MemorySegment src, long offset, int blockBytes, int codes, int fifthBits,
                                   float[] dst, int dstOffset, int blocks) {
        for (int b = 0; b < blocks; b++) {
            long block = offset + (long) b * blockBytes;
            float d = f16(src, block);
            float dmin = f16(src, block + 2);
            int y = dstOffset + b * SUPER_BLOCK;
            for (int pair = 0; pair < 4; pair++) {
                float d1 = d * packedScale(src, block + 4, 2 * pair);
                float m1 = dmin * packedMin(src, block + 4, 2 * pair);
                float d2 = d * packedScale(src, block + 4, 2 * pair + 1);
                float m2 = dmin * packedMin(src, block + 4, 2 * pair + 1);
                long q = block + codes + 32L * pair;
                for (int l = 0; l < 32; l++) {
                    int code = byteAt(src, q + l);
                    int high = fifthBits < 0 ? 0 : byteAt(src, block + fifthBits + l) >>> (2 * pair);
                    dst[y + l] = d1 * ((code & 0xF) + ((high & 1) << 4)) - m1;
                    dst[y + 32 + l] = d2 * ((code >>> 4) + ((high & 2) << 3)) - m2;
                }
                y += 64;
            }
        }
    }

    /**
     * The 6-bit scale of sub-block {@code j} (0..7) of Q4_K/Q5_K's 12 packed bytes at {@code offset}: sub-blocks
     * 0-3 keep scale and minimum in the low 6 bits of bytes j and j+4; 4-7 keep their low 4 bits in byte j+4's
     * nibbles and their top 2 bits in the spare top bits of bytes j-4 and j.
     */
    public static int packedScale(MemorySegment src, long offset, int j) {
        if (j < 4) {
            return byteAt(src, offset + j) & 63;
        }
        return byteAt(src, offset + j + 4) & 0xF | (byteAt(src, offset + j - 4) >>> 6) << 4;
    }

    /** The 6-bit minimum of sub-block {@code j}; see {@link #packedScale}. */
    public static int packedMin(MemorySegment src, long offset, int j) {
        if (j < 4) {
            return byteAt(src, offset + j + 4) & 63;
        }
        return byteAt(src, offset + j + 4) >>> 4 | (byteAt(src, offset + j) >>> 6) << 4;
    }

    /** Packs eight 6-bit scales and minimums as {@link #packedScale} and {@link #packedMin} read them. */
    static void packScales(int[] scales, int[] mins, MemorySegment dst, long offset) {
        byte[] packed = new byte[SCALE_BYTES];
        for (int j = 0; j < 8; j++) {
            int ls = scales[j];
            int lm = mins[j];
            if (j < 4) {
                packed[j] = (byte) ls;
                packed[j + 4] = (byte) lm;
            } else {
                packed[j + 4] = (byte) (ls & 0xF | (lm & 0xF) << 4);
                packed[j - 4] |= (byte) ((ls >>> 4) << 6);
                packed[j] |= (byte) ((lm >>> 4) << 6);
            }
        }
        MemorySegment.copy(packed, 0, dst, ValueLayout.JAVA_BYTE, offset, SCALE_BYTES);
    }

    private static int byteAt(MemorySegment src, long offset) {
        return src.get(ValueLayout.JAVA_BYTE, offset) & 0xFF;
    }

    /**
     * Quantises one super-block of Q4_K or Q5_K, ggml's reference way: each sub-block of 32 gets a scale and a
     * minimum from {@link #fitScaleAndMin} (weights: the sub-block's RMS plus each element's magnitude), both
     * are quantised to 6 bits against the super-block's largest, and the codes are chosen again against the
     * scales as stored. Writes d, dmin and the packed scales from {@code offset}; leaves the codes (0..nmax) in
     * {@code codes}.
     */
    static void quantizeScaleMin(float[] x, int xo, int nmax, float rmin, float rdelta, int nstep,
                                 MemorySegment dst, long offset, int[] codes) {
        float[] weights = new float[32];
        int[] aux = new int[32];
        float[] scales = new float[8];
        float[] mins = new float[8];
        float maxScale = 0;
        float maxMin = 0;
        for (int j = 0; j < 8; j++) {
            int s = xo + 32 * j;
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) {
                sumX2 += x[s + l] * x[s + l];
            }
            float rms = (float) Math.sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) {
                weights[l] = rms + Math.abs(x[s + l]);
            }
            scales[j] = fitScaleAndMin(32, nmax, x, s, weights, codes, 32 * j, mins, j, aux, rmin, rdelta, nstep);
            maxScale = Math.max(maxScale, scales[j]);
            maxMin = Math.max(maxMin, mins[j]);
        }
        float inverseScale = maxScale > 0 ? 63f / maxScale : 0f;
        float inverseMin = maxMin > 0 ? 63f / maxMin : 0f;
        int[] ls = new int[8];
        int[] lm = new int[8];
        for (int j = 0; j < 8; j++) {
            // ggml stores the rounded value in a byte before capping it at 63
            ls[j] = Math.min(63, nearestInt(inverseScale * scales[j]) & 0xFF);
            lm[j] = Math.min(63, nearestInt(inverseMin * mins[j]) & 0xFF);
        }
        float d = putF16(dst, offset, maxScale / 63f);
        float dmin = putF16(dst, offset + 2, maxMin / 63f);
        packScales(ls, lm, dst, offset + 4);
        for (int j = 0; j < 8; j++) {
            float scale = d * ls[j];
            if (scale == 0) {
                continue;
            }
            float min = dmin * lm[j];
            for (int i = 0; i < 32; i++) {
                int l = nearestInt((x[xo + 32 * j + i] + min) / scale);
                codes[32 * j + i] = Math.max(0, Math.min(nmax, l));
            }
        }
    }

    /**
     * Fits x ≈ scale·L - min (L in 0..nmax, min ≥ 0) to {@code n} elements by weighted least squares, trying the
     * grid {@code (nmax + rmin + rdelta·is) / (max - min)} for is in 0..nstep as the inverse scale and keeping the
     * codes of the smallest weighted squared error (ggml's make_qkx2_quants). Returns the scale; the minimum, as
     * a positive offset, goes to {@code minOut[minIndex]}, the codes to {@code L[lo ..]}.
     */
    static float fitScaleAndMin(int n, int nmax, float[] x, int xo, float[] weights, int[] L, int lo,
                                float[] minOut, int minIndex, int[] aux, float rmin, float rdelta, int nstep) {
        float min = x[xo];
        float max = x[xo];
        float sumW = weights[0];
        float sumX = sumW * x[xo];
        for (int i = 1; i < n; i++) {
            if (x[xo + i] < min) {
                min = x[xo + i];
            }
            if (x[xo + i] > max) {
                max = x[xo + i];
            }
            float w = weights[i];
            sumW += w;
            sumX += w * x[xo + i];
        }
        if (min > 0) {
            min = 0;
        }
        if (max == min) {
            for (int i = 0; i < n; i++) {
                L[lo + i] = 0;
            }
            minOut[minIndex] = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++) {
            int l = Math.max(0, Math.min(nmax, nearestInt(iscale * (x[xo + i] - min))));
            L[lo + i] = l;
            float diff = scale * l + min - x[xo + i];
            bestError += weights[i] * (diff * diff);
        }
        if (nstep < 1) {
            minOut[minIndex] = -min;
            return scale;
        }
        for (int is = 0; is <= nstep; is++) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0;
            float sumL2 = 0;
            float sumXL = 0;
            for (int i = 0; i < n; i++) {
                int l = Math.max(0, Math.min(nmax, nearestInt(iscale * (x[xo + i] - min))));
                aux[i] = l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[xo + i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det > 0) {
                float thisScale = (sumW * sumXL - sumX * sumL) / det;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / det;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float error = 0;
                for (int i = 0; i < n; i++) {
                    float diff = thisScale * aux[i] + thisMin - x[xo + i];
                    error += weights[i] * (diff * diff);
                }
                if (error < bestError) {
                    System.arraycopy(aux, 0, L, lo, n);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        minOut[minIndex] = -min;
        return scale;
    }

    /**
     * Fits x ≈ scale·(L - nmax) (L in 0..2·nmax-1) to {@code n} elements, weighting each by x², over the inverse
     * scales -(nmax + 0.1·is)/max for is in -9..9, where max is the element of largest magnitude with its sign
     * (ggml's make_qx_quants without importance weights). Returns the scale (negative when max is positive); the
     * codes go to {@code L[lo ..]}.
     */
    static float fitSymmetricScale(int n, int nmax, float[] x, int xo, int[] L, int lo) {
        float max = 0;
        float amax = 0;
        for (int i = 0; i < n; i++) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) {
                amax = ax;
                max = x[xo + i];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; i++) {
                L[lo + i] = 0;
            }
            return 0f;
        }
        float iscale = -nmax / max;
        float sumLX = 0;
        float sumL2 = 0;
        for (int i = 0; i < n; i++) {
            float xi = x[xo + i];
            int l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * xi)));
            L[lo + i] = l + nmax;
            float w = xi * xi;
            sumLX += w * xi * l;
            sumL2 += w * l * l;
        }
        float scale = sumL2 != 0 ? sumLX / sumL2 : 0f;
        float best = scale * sumLX;
        for (int is = -9; is <= 9; is++) {
            if (is == 0) {
                continue;
            }
            iscale = -(nmax + 0.1f * is) / max;
            sumLX = 0;
            sumL2 = 0;
            for (int i = 0; i < n; i++) {
                float xi = x[xo + i];
                int l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * xi)));
                float w = xi * xi;
                sumLX += w * xi * l;
                sumL2 += w * l * l;
            }
            if (sumL2 > 0 && sumLX * sumLX > best * sumL2) {
                for (int i = 0; i < n; i++) {
                    L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * x[xo + i])));
                }
                scale = sumLX / sumL2;
                best = scale * sumLX;
            }
        }
        return scale;
    }
}
