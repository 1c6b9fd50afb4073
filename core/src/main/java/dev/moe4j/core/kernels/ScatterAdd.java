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
 * dst[index[i]] += weight[i]·src[i]: the MoE combine (expert outputs back to their tokens, times the gate) and
 * the gradient of {@link Gather#rows}. The work is split by destination row and each destination adds its
 * sources in increasing i, so the sums are the same for every thread count and no two threads write a row.
 */
public final class ScatterAdd {
    private ScatterAdd() {
    }

    /** dst[index[i]] += weight[i]·src[i] for every i < index.length; weight may be null (all ones). */
    public static void rows(Tensor dst, Tensor src, int[] index, float[] weight) {
        Checks.requireF32("ScatterAdd.rows", dst, src);
        int cols = dst.cols(), dstRows = dst.rows(), n = index.length;
        Checks.require(src.cols() == cols && src.rows() == n, () -> "ScatterAdd.rows: " + src + " is not " + n + " rows of " + dst);
        Checks.require(weight == null || weight.length >= n, () -> "ScatterAdd.rows: " + (weight == null ? 0 : weight.length) + " weights for " + n + " rows");
        // Counting sort of the sources by destination (stable: sources keep increasing order within a row).
        int[] start = new int[dstRows + 1];
        for (int i = 0; i < n; i++) {
            if (index[i] < 0 || index[i] >= dstRows) {
                throw new IndexOutOfBoundsException("ScatterAdd.rows: index[" + i + "] = " + index[i] + " outside [0, " + dstRows + ")");
            }
            start[index[i] + 1]++;
        }
        for (int r = 0; r < dstRows; r++) {
            start[r + 1] += start[r];
        }
        int[] order = new int[n];
        int[] fill = start.clone();
        for (int i = 0; i < n; i++) {
            order[fill[index[i]]++] = i;
        }
        MemorySegment ds = dst.segment(), ss = src.segment();
        long workPerRow = (long) cols * (1 + n / Math.max(1, dstRows));
        int minRows = (int) Math.max(1, (1 << 15) / Math.max(1, workPerRow));
        Parallel.forRange(dstRows, minRows, (from, to) -> {
            for (int r = from; r < to; r++) {
                long d = (long) r * cols;
                for (int s = start[r]; s < start[r + 1]; s++) {
                    int i = order[s];
                    addScaled(weight == null ? 1f : weight[i], ss, (long) i * cols, ds, d, cols);
                }
            }
        });
    }

    private static void addScaled(float w, MemorySegment src, long from, MemorySegment dst, long to, int cols) {
        var vw = FloatVector.broadcast(F, w);
        int c = 0;
        for (int bound = F.loopBound(cols); c < bound; c += LANES) {
            f32(src, from + c).fma(vw, f32(dst, to + c)).intoMemorySegment(dst, (to + c) * 4, LE);
        }
        for (; c < cols; c++) {
            setF32(dst, to + c, getF32(dst, to + c) + w * getF32(src, from + c));
        }
    }
}
