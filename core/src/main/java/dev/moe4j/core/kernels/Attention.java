package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Scaled dot-product attention over one sequence, causal or (an encoder's) bidirectional, with grouped key/value
 * heads, an optional sliding window and optional per-head "sinks" (gpt-oss: a learned logit that joins each softmax but carries no value,
 * letting a head attend to nothing).
 *
 * <p>Layouts: q [T, heads·headDim], k [S, kvHeads·headDim], v [S, kvHeads·valueHeadDim], out
 * [T, heads·valueHeadDim]. Query row t sits at position {@code queryStart + t} and key row s at position s, so
 * the same call serves training (queryStart 0, S = T) and decoding against a KV cache (S = positions so far).
 *
 * <p>The forward pass keeps only each row's log-sum-exp; the backward pass recomputes the probabilities from it
 * (as flash attention does), so memory stays linear in the sequence length. Many query rows (training, prompts)
 * run as blocked matrix products per head; a few (decoding) key by key.
 */
public final class Attention {
    /**
     * From this many query rows on, attention runs as blocked matrix products ({@link AttentionBlocks}); fewer
     * rows (decoding) go key by key, which touches only what one query needs.
     */
    static final int MIN_BLOCKED_ROWS = 16;

    private Attention() {
    }

    /**
     * Computes {@code out}; when {@code lse} is not null it receives the log-sum-exp of every (query row, head),
     * at index t·heads + h, for the backward pass. {@code sinks} [heads] may be null.
     */
    public static void forward(Tensor out, float[] lse, Tensor q, Tensor k, Tensor v, int queryStart,
                               AttentionSpec spec, Tensor sinks) {
        forward(out, lse, q, PagedRows.of(k), PagedRows.of(v), queryStart, spec, sinks);
    }

    /**
     * {@link #forward(Tensor, float[], Tensor, Tensor, Tensor, int, AttentionSpec, Tensor)} with keys and values
     * held in pieces (a paged KV cache, piece by piece alike for both). Decoding reads the pieces where they lie;
     * the blocked path, which needs one matrix, gathers them first (a copy small beside its products).
     */
    public static void forward(Tensor out, float[] lse, Tensor q, PagedRows k, PagedRows v, int queryStart,
                               AttentionSpec spec, Tensor sinks) {
        int rows = checkShapes(out, q, k, v, queryStart, spec);
        if (rows >= MIN_BLOCKED_ROWS) {
            AttentionBlocks.forward(out, lse, q, k.gatheredOnHost(), v.gatheredOnHost(), queryStart, spec, sinks);
            return;
        }
        int heads = spec.heads(), dq = spec.headDim(), dv = spec.valueHeadDim();
        int keyStride = spec.kvHeads() * dq, valueStride = spec.kvHeads() * dv;
        MemorySegment qs = q.segment(), os = out.segment();
        int pieces = k.pieces().size();
        MemorySegment[] ks = new MemorySegment[pieces], vs = new MemorySegment[pieces];
        int[] firstRow = new int[pieces + 1];
        for (int i = 0; i < pieces; i++) {
            ks[i] = k.pieces().get(i).segment();
            vs[i] = v.pieces().get(i).segment();
            firstRow[i + 1] = firstRow[i] + k.pieces().get(i).rows();
        }
        int keys = k.rows();
        Parallel.forRange(rows * heads, 1, (from, to) -> {
            float[] p = new float[keys];
            float[] weighted = new float[dv];
            float[] lanes = new float[Widening.LANES];
            for (int r = from; r < to; r++) {
                int t = r / heads, h = r % heads, g = spec.kvHeadOf(h);
                int position = queryStart + t;
                int lo = spec.firstVisible(position), hi = spec.lastVisible(position, keys);
                long qOff = (long) t * heads * dq + (long) h * dq;
                float max = sinks == null ? Float.NEGATIVE_INFINITY : sinks.getFloat(h);
                for (int i = 0; i < pieces; i++) {
                    for (int s = Math.max(lo, firstRow[i]), end = Math.min(hi, firstRow[i + 1] - 1); s <= end; s++) {
                        long at = (long) (s - firstRow[i]) * keyStride + (long) g * dq;
                        p[s] = spec.scale() * VectorMath.dot(qs, qOff, DType.F32, ks[i], at, dq, lanes);
                        max = Math.max(max, p[s]);
                    }
                }
                double sum = sinks == null ? 0 : Math.exp(sinks.getFloat(h) - max);
                for (int s = lo; s <= hi; s++) {
                    p[s] = (float) Math.exp(p[s] - max);
                    sum += p[s];
                }
                long oOff = (long) t * heads * dv + (long) h * dv;
                java.util.Arrays.fill(weighted, 0f);
                float inv = (float) (1 / sum);
                for (int i = 0; i < pieces; i++) {
                    for (int s = Math.max(lo, firstRow[i]), end = Math.min(hi, firstRow[i + 1] - 1); s <= end; s++) {
                        long at = (long) (s - firstRow[i]) * valueStride + (long) g * dv;
                        VectorMath.axpy(p[s] * inv, vs[i], at, weighted, dv);
                    }
                }
                MemorySegment.copy(weighted, 0, os, ValueLayout.JAVA_FLOAT_UNALIGNED, oOff * 4, dv);
                if (lse != null) {
                    lse[r] = (float) (max + Math.log(sum));
                }
            }
        });
    }

    /**
     * Adds the gradients of the loss with respect to q, k, v (and the sinks, when {@code dSinks} is not null) for
     * the upstream gradient {@code dOut}, from the forward's inputs, output and log-sum-exp. Work is split by
     * key/value head, so each gradient element has one writer and the result does not depend on the threads.
     */
    public static void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dSinks, Tensor dOut,
                                Tensor q, Tensor k, Tensor v, Tensor out, float[] lse, int queryStart,
                                AttentionSpec spec, Tensor sinks) {
        int rows = checkShapes(out, q, k, v, queryStart, spec);
        Checks.requireF32("Attention.backward", dq, dk, dv, dSinks, dOut);
        Checks.require(dq.size() == q.size() && dk.size() == k.size() && dv.size() == v.size() && dOut.size() == out.size(),
                () -> "Attention.backward: gradient shapes do not match their values");
        if (rows >= MIN_BLOCKED_ROWS) {
            AttentionBlocks.backward(dq, dk, dv, dSinks, dOut, q, k, v, out, lse, queryStart, spec, sinks);
            return;
        }
        int heads = spec.heads(), dqDim = spec.headDim(), dvDim = spec.valueHeadDim(), group = heads / spec.kvHeads();
        int keyStride = spec.kvHeads() * dqDim, valueStride = spec.kvHeads() * dvDim;
        MemorySegment qs = q.segment(), ks = k.segment(), vs = v.segment(), os = out.segment(), dos = dOut.segment();
        MemorySegment dqs = dq.segment(), dks = dk.segment(), dvs = dv.segment();
        int keys = k.rows();
        Parallel.forRange(spec.kvHeads(), 1, (fromGroup, toGroup) -> {
            float[] lanes = new float[Widening.LANES];
            for (int g = fromGroup; g < toGroup; g++) {
                for (int h = g * group; h < (g + 1) * group; h++) {
                    double sinkGrad = 0;
                    for (int t = 0; t < rows; t++) {
                        int position = queryStart + t;
                        int lo = spec.firstVisible(position), hi = spec.lastVisible(position, keys);
                        int r = t * heads + h;
                        long qOff = (long) r * dqDim, oOff = (long) r * dvDim;
                        float rowLse = lse[r];
                        // D = dOut·out = Σ_s p_s (dOut·v_s): the softmax backward's row term.
                        float d = VectorMath.dot(dos, oOff, DType.F32, os, oOff, dvDim, lanes);
                        for (int s = lo; s <= hi; s++) {
                            long kOff = (long) s * keyStride + (long) g * dqDim;
                            long vOff = (long) s * valueStride + (long) g * dvDim;
                            float p = (float) Math.exp(spec.scale() * VectorMath.dot(qs, qOff, DType.F32, ks, kOff, dqDim, lanes) - rowLse);
                            float dp = VectorMath.dot(dos, oOff, DType.F32, vs, vOff, dvDim, lanes);
                            float ds = p * (dp - d) * spec.scale();
                            VectorMath.axpy(ds, ks, kOff, dqs, qOff, dqDim);
                            VectorMath.axpy(ds, qs, qOff, dks, kOff, dqDim);
                            VectorMath.axpy(p, dos, oOff, dvs, vOff, dvDim);
                        }
                        if (sinks != null) {
                            sinkGrad -= Math.exp(sinks.getFloat(h) - rowLse) * d;
                        }
                    }
                    if (dSinks != null) {
                        dSinks.setFloat(h, dSinks.getFloat(h) + (float) sinkGrad);
                    }
                }
            }
        });
    }

    private static int checkShapes(Tensor out, Tensor q, Tensor k, Tensor v, int queryStart, AttentionSpec spec) {
        return checkShapes(out, q, PagedRows.of(k), PagedRows.of(v), queryStart, spec);
    }

    private static int checkShapes(Tensor out, Tensor q, PagedRows k, PagedRows v, int queryStart, AttentionSpec spec) {
        Checks.requireF32("Attention", out, q, k.pieces().getFirst(), v.pieces().getFirst());
        int rows = q.rows();
        Checks.require(q.cols() == spec.heads() * spec.headDim(), () -> "Attention: q " + q + " is not [T, heads·headDim] for " + spec);
        Checks.require(k.cols() == spec.kvHeads() * spec.headDim(), () -> "Attention: k " + k + " is not [S, kvHeads·headDim] for " + spec);
        boolean alike = v.pieces().size() == k.pieces().size();
        for (int i = 0; alike && i < k.pieces().size(); i++) {
            alike = k.pieces().get(i).rows() == v.pieces().get(i).rows();
        }
        Checks.require(v.cols() == spec.kvHeads() * spec.valueHeadDim() && alike,
                () -> "Attention: v " + v + " does not match k " + k + " for " + spec);
        Checks.require(out.rows() == rows && out.cols() == spec.heads() * spec.valueHeadDim(),
                () -> "Attention: out " + out + " is not [T, heads·valueHeadDim] for " + spec);
        Checks.require(queryStart >= 0 && queryStart + rows <= k.rows(),
                () -> "Attention: queries at positions " + queryStart + ".." + (queryStart + rows - 1) + " need keys up to there, have " + k.rows());
        return rows;
    }
}
