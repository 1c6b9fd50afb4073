package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Softmax over the last axis, with the row maximum subtracted first so that large logits do not overflow.
 * Router probabilities, attention weights and the cross-entropy all go through here, always in F32.
 */
public final class Softmax {
    private static final int GRAIN = 1 << 14;

    private Softmax() {
    }

    /** out[r] = exp(x[r] − max) / Σ exp(x[r] − max); out may be x. A row of all −∞ gives NaN, as in PyTorch. */
    public static void forward(Tensor out, Tensor x) {
        Checks.requireF32("Softmax.forward", out, x);
        int cols = x.cols();
        Checks.require(out.size() == x.size() && out.cols() == cols, () -> "Softmax.forward: " + out + " does not match " + x);
        MemorySegment xs = x.segment(), os = out.segment();
        Parallel.forRange(x.rows(), Checks.minRows(cols, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long base = (long) r * cols;
                float max = max(xs, base, cols);
                float sum = expShifted(xs, os, base, cols, max);
                divideRow(os, base, cols, sum);
            }
        });
    }

    /** dx = y ⊙ (dy − Σ dy ⊙ y), per row, from the forward output y. dx may be dy. */
    public static void backward(Tensor dx, Tensor dy, Tensor y) {
        Checks.requireF32("Softmax.backward", dx, dy, y);
        int cols = y.cols();
        Checks.require(dx.size() == y.size() && dy.size() == y.size(), () -> "Softmax.backward: " + dx + ", " + dy + " do not match " + y);
        MemorySegment dxs = dx.segment(), dys = dy.segment(), ys = y.segment();
        Parallel.forRange(y.rows(), Checks.minRows(cols, GRAIN), (from, to) -> {
            float[] lanes = new float[LANES];
            for (int r = from; r < to; r++) {
                long base = (long) r * cols;
                float s = VectorMath.dot(dys, base, DType.F32, ys, base, cols, lanes);
                int c = 0;
                for (int bound = F.loopBound(cols); c < bound; c += LANES) {
                    f32(dys, base + c).sub(s).mul(f32(ys, base + c)).intoMemorySegment(dxs, (base + c) * 4, LE);
                }
                for (; c < cols; c++) {
                    setF32(dxs, base + c, (getF32(dys, base + c) - s) * getF32(ys, base + c));
                }
            }
        });
    }

    /** out[r] = log Σ exp(x[r]) for every row (max-shifted); out holds at least x.rows() values. */
    public static void logSumExp(Tensor x, float[] out) {
        Checks.requireF32("Softmax.logSumExp", x);
        int cols = x.cols();
        Checks.require(out.length >= x.rows(), () -> "Softmax.logSumExp: output of " + out.length + " for " + x.rows() + " rows");
        MemorySegment xs = x.segment();
        Parallel.forRange(x.rows(), Checks.minRows(cols, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long base = (long) r * cols;
                float max = max(xs, base, cols);
                if (max == Float.NEGATIVE_INFINITY || max == Float.POSITIVE_INFINITY || Float.isNaN(max)) {
                    out[r] = max;
                    continue;
                }
                out[r] = max + (float) Math.log(sumExpShifted(xs, base, cols, max));
            }
        });
    }

    static float max(MemorySegment xs, long base, int cols) {
        var acc = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            acc = acc.max(f32(xs, base + c));
        }
        float max = acc.reduceLanes(VectorOperators.MAX);
        for (; c < cols; c++) {
            max = Math.max(max, getF32(xs, base + c));
        }
        return max;
    }

    /** out = exp(x − max) over one row; returns the sum. */
    private static float expShifted(MemorySegment xs, MemorySegment os, long base, int cols, float max) {
        var acc = FloatVector.zero(F);
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            var e = VectorExp.exp(f32(xs, base + c).sub(max));
            e.intoMemorySegment(os, (base + c) * 4, LE);
            acc = acc.add(e);
        }
        float sum = Lanes.sum(acc);
        for (; c < cols; c++) {
            float e = (float) Math.exp(getF32(xs, base + c) - max);
            setF32(os, base + c, e);
            sum += e;
        }
        return sum;
    }

    private static float sumExpShifted(MemorySegment xs, long base, int cols, float max) {
        var acc = FloatVector.zero(F);
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            acc = acc.add(VectorExp.exp(f32(xs, base + c).sub(max)));
        }
        float sum = Lanes.sum(acc);
        for (; c < cols; c++) {
            sum += (float) Math.exp(getF32(xs, base + c) - max);
        }
        return sum;
    }

    /** Divides rather than multiplying by 1/sum, to round as PyTorch does. */
    private static void divideRow(MemorySegment os, long base, int cols, float sum) {
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            f32(os, base + c).div(sum).intoMemorySegment(os, (base + c) * 4, LE);
        }
        for (; c < cols; c++) {
            setF32(os, base + c, getF32(os, base + c) / sum);
        }
    }
}
