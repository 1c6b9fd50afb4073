package dev.moe4j.core.kernels;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Root-mean-square normalisation of each row, y = x / sqrt(mean(x²) + eps) · w, as Llama-style models apply it
 * before attention and the FFN. The weight may be F32, BF16 or F16, or null for no scale (q/k norms of some
 * families, the unscaled norm of some routers). The order of operations is that of transformers: normalise in
 * F32, then multiply by the weight.
 */
public final class RmsNorm {
    private static final int GRAIN = 1 << 15;
    /** Rows per partial sum of the weight gradient: fixed, so the sum does not depend on the thread count. */
    private static final int GRAD_BLOCK = 64;

    private RmsNorm() {
    }

    /** out[r] = x[r] / sqrt(mean(x[r]²) + eps) ⊙ weight; out may be x; weight may be null (no scale). */
    public static void forward(Tensor out, Tensor x, Tensor weight, float eps) {
        Checks.requireF32("RmsNorm.forward", out, x);
        Checks.requireWeight("RmsNorm.forward", weight);
        int cols = x.cols();
        Checks.require(out.size() == x.size() && out.cols() == cols, () -> "RmsNorm.forward: " + out + " does not match " + x);
        Checks.require(weight == null || weight.size() == cols, () -> "RmsNorm.forward: weight " + weight + " for rows of " + cols);
        MemorySegment xs = x.segment(), os = out.segment();
        float[] ws = weight == null ? null : Widening.toFloats(weight);
        Parallel.forRange(x.rows(), Checks.minRows(cols, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long base = (long) r * cols;
                float inv = inverseRms(xs, base, cols, eps);
                int c = 0;
                for (int bound = F.loopBound(cols); c < bound; c += LANES) {
                    var v = f32(xs, base + c).mul(inv);
                    if (ws != null) {
                        v = v.mul(FloatVector.fromArray(F, ws, c));
                    }
                    v.intoMemorySegment(os, (base + c) * 4, LE);
                }
                for (; c < cols; c++) {
                    float v = getF32(xs, base + c) * inv;
                    setF32(os, base + c, ws == null ? v : v * ws[c]);
                }
            }
        });
    }

    /**
     * Gradients of {@link #forward}: dx (overwritten) and, when dWeight is not null, dWeight += Σ_rows dy ⊙ x̂
     * (F32). With x̂ = x·inv and g = dy ⊙ w: dx = inv · (g − x̂ · mean(g ⊙ x̂)).
     */
    public static void backward(Tensor dx, Tensor dWeight, Tensor dy, Tensor x, Tensor weight, float eps) {
        Checks.requireF32("RmsNorm.backward", dx, dy, x, dWeight);
        Checks.requireWeight("RmsNorm.backward", weight);
        int cols = x.cols(), rows = x.rows();
        Checks.require(dx.size() == x.size() && dy.size() == x.size(), () -> "RmsNorm.backward: " + dx + ", " + dy + " do not match " + x);
        Checks.require(weight == null || weight.size() == cols, () -> "RmsNorm.backward: weight " + weight + " for rows of " + cols);
        Checks.require(dWeight == null || dWeight.size() == cols, () -> "RmsNorm.backward: dWeight " + dWeight + " for rows of " + cols);
        Checks.require(dWeight == null || weight != null, () -> "RmsNorm.backward: a weight gradient without a weight");
        MemorySegment xs = x.segment(), dys = dy.segment(), dxs = dx.segment();
        float[] ws = weight == null ? null : Widening.toFloats(weight);
        int blocks = (rows + GRAD_BLOCK - 1) / GRAD_BLOCK;
        float[] partial = dWeight == null ? null : new float[blocks * cols];
        Parallel.forRange(blocks, Math.max(1, GRAIN / Math.max(1, GRAD_BLOCK * cols)), (fromBlock, toBlock) -> {
            MemorySegment part = partial == null ? null : MemorySegment.ofArray(partial);
            for (int b = fromBlock; b < toBlock; b++) {
                long partBase = (long) b * cols;
                for (int r = b * GRAD_BLOCK, end = Math.min(rows, r + GRAD_BLOCK); r < end; r++) {
                    long base = (long) r * cols;
                    float inv = inverseRms(xs, base, cols, eps);
                    // Σ g ⊙ x, where g = dy ⊙ w
                    var accV = FloatVector.zero(F);
                    int c = 0;
                    int bound = F.loopBound(cols);
                    for (; c < bound; c += LANES) {
                        var g = f32(dys, base + c);
                        if (ws != null) {
                            g = g.mul(FloatVector.fromArray(F, ws, c));
                        }
                        accV = g.fma(f32(xs, base + c), accV);
                    }
                    float gx = Lanes.sum(accV);
                    for (; c < cols; c++) {
                        float g = getF32(dys, base + c) * (ws == null ? 1f : ws[c]);
                        gx += g * getF32(xs, base + c);
                    }
                    float k = gx * inv * inv / cols; // dx = inv · (g − x · inv² · mean(g ⊙ x))
                    for (c = 0; c < bound; c += LANES) {
                        var xv = f32(xs, base + c);
                        var dyv = f32(dys, base + c);
                        var g = ws == null ? dyv : dyv.mul(FloatVector.fromArray(F, ws, c));
                        g.sub(xv.mul(k)).mul(inv).intoMemorySegment(dxs, (base + c) * 4, LE);
                        if (part != null) {
                            dyv.mul(xv.mul(inv)).add(f32(part, partBase + c)).intoMemorySegment(part, (partBase + c) * 4, LE);
                        }
                    }
                    for (; c < cols; c++) {
                        float xv = getF32(xs, base + c), dyv = getF32(dys, base + c);
                        float g = ws == null ? dyv : dyv * ws[c];
                        setF32(dxs, base + c, (g - xv * k) * inv);
                        if (part != null) {
                            partial[(int) (partBase + c)] += dyv * (xv * inv);
                        }
                    }
                }
            }
        });
        if (dWeight != null) {
            sumBlocks(dWeight.segment(), partial, blocks, cols);
        }
    }

    /** dWeight += Σ_b partial[b] in block order, split over columns. */
    private static void sumBlocks(MemorySegment dw, float[] partial, int blocks, int cols) {
        MemorySegment part = MemorySegment.ofArray(partial);
        Parallel.forRange(cols, Math.max(LANES, GRAIN / Math.max(1, blocks)), (from, to) -> {
            int c = from;
            for (; c + LANES <= to; c += LANES) {
                var sum = f32(dw, c);
                for (int b = 0; b < blocks; b++) {
                    sum = sum.add(f32(part, (long) b * cols + c));
                }
                sum.intoMemorySegment(dw, (long) c * 4, LE);
            }
            for (; c < to; c++) {
                float sum = getF32(dw, c);
                for (int b = 0; b < blocks; b++) {
                    sum += partial[b * cols + c];
                }
                setF32(dw, c, sum);
            }
        });
    }

    /** 1 / sqrt(mean(x²) + eps) over one row. */
    static float inverseRms(MemorySegment xs, long base, int cols, float eps) {
        var acc = FloatVector.zero(F);
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            var v = f32(xs, base + c);
            acc = v.fma(v, acc);
        }
        float sum = Lanes.sum(acc);
        for (; c < cols; c++) {
            float v = getF32(xs, base + c);
            sum += v * v;
        }
        return (float) (1.0 / Math.sqrt(sum / cols + eps));
    }
}
