package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static dev.moe4j.core.kernels.Widening.FLOAT;

/**
 * {@link Attention} for many query rows as matrix products, one head at a time: the head's queries, keys and values
 * are gathered into contiguous arrays, and each block of {@link #BLOCK} query rows computes its scores
 * S = Q·Kᵀ against the keys the block can see, a masked softmax, and P·V, with {@link Gemm}'s micro-kernel. The
 * backward pass recomputes P from the saved log-sum-exp and forms dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)),
 * dQ = dS·K, dK += dSᵀ·Q and dV += Pᵀ·dO the same way (flash attention's algebra, block by block).
 *
 * <p>Heads are spread over the pool, each product runs on its own thread, and the keys' and values' gradients of
 * heads sharing a key/value head are summed in head order afterwards: the result does not depend on the threads.
 */
final class AttentionBlocks {
    /** Query rows per block: the score block is BLOCK × (visible keys). */
    static final int BLOCK = 64;

    private AttentionBlocks() {
    }

    /** One head's query, key, value (and for backward, output-gradient and output) rows, gathered contiguously. */
    private static float[] gather(MemorySegment src, int rows, int stride, int offset, int width, float[] into) {
        float[] out = into != null && into.length >= rows * width ? into : new float[rows * width];
        for (int r = 0; r < rows; r++) {
            MemorySegment.copy(src, FLOAT, ((long) r * stride + offset) * 4, out, r * width, width);
        }
        return out;
    }

    private static void scatter(float[] src, int rows, int width, MemorySegment dst, int stride, int offset) {
        for (int r = 0; r < rows; r++) {
            MemorySegment.copy(src, r * width, dst, FLOAT, ((long) r * stride + offset) * 4, width);
        }
    }

    /** c[m, n] (+)= a[m, k] (row stride aRow, column stride aCol) · b, b [n, k] when transposed else [k, n]. */
    private static void product(float[] a, int aOffset, int aRow, int aCol, float[] b, int bOffset, int ldb,
                                boolean bTransposed, float[] c, int cOffset, int ldc, int m, int n, int k,
                                boolean accumulate) {
        var o = new Gemm.Operands(a, aOffset, aRow, aCol, MemorySegment.ofArray(b).asSlice(4L * bOffset), DType.F32,
                ldb, bTransposed, MemorySegment.ofArray(c).asSlice(4L * cOffset), ldc);
        Gemm.multiplyHere(o, m, n, k, accumulate);
    }

    static void forward(Tensor out, float[] lse, Tensor q, Tensor k, Tensor v, int queryStart, AttentionSpec spec,
                        Tensor sinks) {
        int rows = q.rows(), keys = k.rows(), heads = spec.heads(), dq = spec.headDim(), dv = spec.valueHeadDim();
        int kStride = spec.kvHeads() * dq, vStride = spec.kvHeads() * dv;
        float scale = spec.scale();
        Parallel.forRange(heads, 1, (from, to) -> {
            float[] qh = null, kh = null, vh = null;
            float[] s = new float[BLOCK * keys], oh = new float[BLOCK * dv];
            for (int h = from; h < to; h++) {
                int g = spec.kvHeadOf(h);
                qh = gather(q.segment(), rows, heads * dq, h * dq, dq, qh);
                kh = gather(k.segment(), keys, kStride, g * dq, dq, kh);
                vh = gather(v.segment(), keys, vStride, g * dv, dv, vh);
                float sink = sinks == null ? Float.NEGATIVE_INFINITY : sinks.getFloat(h);
                for (int r0 = 0; r0 < rows; r0 += BLOCK) {
                    int nb = Math.min(BLOCK, rows - r0);
                    int kLo = spec.firstVisible(queryStart + r0), kHi = spec.lastVisible(queryStart + r0 + nb - 1, keys);
                    int w = kHi - kLo + 1;
                    product(qh, r0 * dq, dq, 1, kh, kLo * dq, dq, true, s, 0, w, nb, w, dq, false);
                    for (int i = 0; i < nb; i++) {
                        float rowLse = softmaxRow(s, i * w, w, kLo, queryStart + r0 + i, keys, spec, scale, sink);
                        if (lse != null) {
                            lse[(r0 + i) * heads + h] = rowLse;
                        }
                    }
                    product(s, 0, w, 1, vh, kLo * dv, dv, false, oh, 0, dv, nb, dv, w, false);
                    for (int i = 0; i < nb; i++) {
                        MemorySegment.copy(oh, i * dv, out.segment(), FLOAT,
                                ((long) (r0 + i) * heads * dv + (long) h * dv) * 4, dv);
                    }
                }
            }
        });
    }

    /**
     * Turns row {@code at..at+w} of raw scores (keys kLo..) into probabilities for the query at {@code position}:
     * scaled, invisible keys zeroed, a sink joining the normaliser; returns the log-sum-exp.
     */
    private static float softmaxRow(float[] s, int at, int w, int kLo, int position, int keys, AttentionSpec spec,
                                    float scale, float sink) {
        int lo = spec.firstVisible(position) - kLo, hi = spec.lastVisible(position, keys) - kLo;
        float max = sink;
        for (int j = lo; j <= hi; j++) {
            s[at + j] *= scale;
            max = Math.max(max, s[at + j]);
        }
        double sum = sink == Float.NEGATIVE_INFINITY ? 0 : Math.exp(sink - max);
        for (int j = lo; j <= hi; j++) {
            float p = (float) Math.exp(s[at + j] - max);
            s[at + j] = p;
            sum += p;
        }
        float inv = (float) (1 / sum);
        Arrays.fill(s, at, at + Math.max(0, lo), 0f);
        for (int j = lo; j <= hi; j++) {
            s[at + j] *= inv;
        }
        Arrays.fill(s, at + Math.max(lo, hi + 1), at + w, 0f);
        return (float) (max + Math.log(sum));
    }

    static void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dSinks, Tensor dOut, Tensor q, Tensor k, Tensor v,
                         Tensor out, float[] lse, int queryStart, AttentionSpec spec, Tensor sinks) {
        int rows = q.rows(), keys = k.rows(), heads = spec.heads(), dqDim = spec.headDim(), dvDim = spec.valueHeadDim();
        int kStride = spec.kvHeads() * dqDim, vStride = spec.kvHeads() * dvDim;
        float scale = spec.scale();
        // Per-head key and value gradients, summed per key/value head in head order below.
        float[][] dKeys = new float[heads][], dValues = new float[heads][];
        double[] sinkGrads = new double[heads];
        Parallel.forRange(heads, 1, (from, to) -> {
            float[] qh = null, kh = null, vh = null, doh = null, oh = null;
            float[] p = new float[BLOCK * keys], ds = new float[BLOCK * keys], dqh = new float[rows * dqDim];
            float[] d = new float[BLOCK];
            for (int h = from; h < to; h++) {
                int g = spec.kvHeadOf(h);
                qh = gather(q.segment(), rows, heads * dqDim, h * dqDim, dqDim, qh);
                kh = gather(k.segment(), keys, kStride, g * dqDim, dqDim, kh);
                vh = gather(v.segment(), keys, vStride, g * dvDim, dvDim, vh);
                doh = gather(dOut.segment(), rows, heads * dvDim, h * dvDim, dvDim, doh);
                oh = gather(out.segment(), rows, heads * dvDim, h * dvDim, dvDim, oh);
                float[] dkh = new float[keys * dqDim], dvh = new float[keys * dvDim];
                double sinkGrad = 0;
                for (int r0 = 0; r0 < rows; r0 += BLOCK) {
                    int nb = Math.min(BLOCK, rows - r0);
                    int kLo = spec.firstVisible(queryStart + r0), kHi = spec.lastVisible(queryStart + r0 + nb - 1, keys);
                    int w = kHi - kLo + 1;
                    product(qh, r0 * dqDim, dqDim, 1, kh, kLo * dqDim, dqDim, true, p, 0, w, nb, w, dqDim, false);
                    product(doh, r0 * dvDim, dvDim, 1, vh, kLo * dvDim, dvDim, true, ds, 0, w, nb, w, dvDim, false);
                    for (int i = 0; i < nb; i++) {
                        int t = r0 + i, position = queryStart + t;
                        int lo = spec.firstVisible(position) - kLo, hi = spec.lastVisible(position, keys) - kLo;
                        float rowLse = lse[t * heads + h];
                        // D = dO·O = Σ_s p_s (dO·v_s): the softmax backward's row term.
                        float di = dot(doh, oh, t * dvDim, dvDim);
                        d[i] = di;
                        int at = i * w;
                        Arrays.fill(p, at, at + Math.max(0, lo), 0f);
                        Arrays.fill(ds, at, at + Math.max(0, lo), 0f);
                        for (int j = lo; j <= hi; j++) {
                            float pj = (float) Math.exp(scale * p[at + j] - rowLse);
                            p[at + j] = pj;
                            ds[at + j] = pj * (ds[at + j] - di) * scale;
                        }
                        Arrays.fill(p, at + Math.max(lo, hi + 1), at + w, 0f);
                        Arrays.fill(ds, at + Math.max(lo, hi + 1), at + w, 0f);
                        if (sinks != null) {
                            sinkGrad -= Math.exp(sinks.getFloat(h) - rowLse) * di;
                        }
                    }
                    // dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO
                    product(ds, 0, w, 1, kh, kLo * dqDim, dqDim, false, dqh, r0 * dqDim, dqDim, nb, dqDim, w, false);
                    product(ds, 0, 1, w, qh, r0 * dqDim, dqDim, false, dkh, kLo * dqDim, dqDim, w, dqDim, nb, true);
                    product(p, 0, 1, w, doh, r0 * dvDim, dvDim, false, dvh, kLo * dvDim, dvDim, w, dvDim, nb, true);
                }
                addColumns(dqh, rows, dqDim, dq.segment(), heads * dqDim, h * dqDim);
                dKeys[h] = dkh;
                dValues[h] = dvh;
                sinkGrads[h] = sinkGrad;
            }
        });
        for (int h = 0; h < heads; h++) {
            int g = spec.kvHeadOf(h);
            addColumns(dKeys[h], keys, dqDim, dk.segment(), kStride, g * dqDim);
            addColumns(dValues[h], keys, dvDim, dv.segment(), vStride, g * dvDim);
            if (dSinks != null) {
                dSinks.setFloat(h, dSinks.getFloat(h) + (float) sinkGrads[h]);
            }
        }
    }

    private static float dot(float[] a, float[] b, int offset, int length) {
        var acc = FloatVector.zero(Widening.F);
        int i = 0;
        for (int bound = Widening.F.loopBound(length); i < bound; i += Widening.LANES) {
            acc = FloatVector.fromArray(Widening.F, a, offset + i).fma(FloatVector.fromArray(Widening.F, b, offset + i), acc);
        }
        float sum = Lanes.sum(acc);
        for (; i < length; i++) {
            sum += a[offset + i] * b[offset + i];
        }
        return sum;
    }

    /** dst[r, offset .. offset + width] += src[r, ..] for every row. */
    private static void addColumns(float[] src, int rows, int width, MemorySegment dst, int stride, int offset) {
        for (int r = 0; r < rows; r++) {
            VectorMath.axpy(1f, MemorySegment.ofArray(src), (long) r * width, dst, (long) r * stride + offset, width);
        }
    }
}
