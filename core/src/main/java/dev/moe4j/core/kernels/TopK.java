package dev.moe4j.core.kernels;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * The k largest values of each row and their indices, largest first; equal values are ordered by the lower
 * index, and NaN ranks above every number (as in torch.topk), so the choice is deterministic. Routers select
 * experts with it (k of a few dozen scores) and expert-choice routing selects tokens (k of thousands).
 */
public final class TopK {
    /** Up to this k a sorted insertion beats a heap. */
    private static final int INSERTION_MAX_K = 16;

    private TopK() {
    }

    /** For every row r of scores [rows, n]: outIndex/outValue[r·k .. r·k + k) = the row's top k. */
    public static void select(Tensor scores, int k, int[] outIndex, float[] outValue) {
        Checks.requireF32("TopK.select", scores);
        int rows = scores.rows(), n = scores.cols();
        Checks.require(k >= 0 && k <= n, () -> "TopK.select: k = " + k + " of rows of " + n);
        Checks.require(outIndex.length >= (long) rows * k && outValue.length >= (long) rows * k,
                () -> "TopK.select: outputs shorter than " + rows + "·" + k);
        MemorySegment s = scores.segment();
        Parallel.forRange(rows, Checks.minRows(n, 1 << 14), (from, to) -> {
            int[] heapIndex = k > INSERTION_MAX_K ? new int[k] : null;
            float[] heapValue = k > INSERTION_MAX_K ? new float[k] : null;
            for (int r = from; r < to; r++) {
                selectRow(s, (long) r * n, n, k, outIndex, outValue, r * k, heapIndex, heapValue);
            }
        });
    }

    /**
     * The top k of scores[offset .. offset + n): indices relative to offset into outIndex/outValue from outOffset.
     * Allocation-free for k ≤ 16.
     */
    public static void row(float[] scores, int offset, int n, int k, int[] outIndex, float[] outValue, int outOffset) {
        if (k < 0 || k > n) { // not Checks.require: its message would be built for every row, a routing hot spot
            throw new IllegalArgumentException("TopK.row: k = " + k + " of " + n);
        }
        MemorySegment s = MemorySegment.ofArray(scores);
        selectRow(s, offset, n, k, outIndex, outValue, outOffset,
                k > INSERTION_MAX_K ? new int[k] : null, k > INSERTION_MAX_K ? new float[k] : null);
    }

    /** True when (va, ia) ranks before (vb, ib). */
    static boolean before(float va, int ia, float vb, int ib) {
        if (va > vb) {
            return true;
        }
        if (va == vb) {
            return ia < ib;
        }
        if (va < vb) { // neither is NaN: the common case, decided before the NaN tests
            return false;
        }
        boolean aNaN = Float.isNaN(va), bNaN = Float.isNaN(vb);
        return aNaN && (!bNaN || ia < ib);
    }

    private static void selectRow(MemorySegment s, long base, int n, int k, int[] outIndex, float[] outValue, int out,
                                  int[] heapIndex, float[] heapValue) {
        if (k == 0) {
            return;
        }
        if (heapIndex == null) {
            insertion(s, base, n, k, outIndex, outValue, out);
        } else {
            heap(s, base, n, k, outIndex, outValue, out, heapIndex, heapValue);
        }
    }

    /** Keeps the best k so far sorted in the output; a candidate that does not beat the k-th is skipped. */
    private static void insertion(MemorySegment s, long base, int n, int k, int[] outIndex, float[] outValue, int out) {
        int size = 0;
        for (int j = 0; j < n; j++) {
            float v = Widening.getF32(s, base + j);
            if (size == k && !before(v, j, outValue[out + k - 1], outIndex[out + k - 1])) {
                continue;
            }
            int pos = Math.min(size, k - 1);
            while (pos > 0 && before(v, j, outValue[out + pos - 1], outIndex[out + pos - 1])) {
                outValue[out + pos] = outValue[out + pos - 1];
                outIndex[out + pos] = outIndex[out + pos - 1];
                pos--;
            }
            outValue[out + pos] = v;
            outIndex[out + pos] = j;
            size = Math.min(size + 1, k);
        }
    }

    /** A heap of the best k with the worst at the root, then sorted out of the heap worst-first into place. */
    private static void heap(MemorySegment s, long base, int n, int k, int[] outIndex, float[] outValue, int out,
                             int[] hi, float[] hv) {
        for (int j = 0; j < k; j++) {
            hv[j] = Widening.getF32(s, base + j);
            hi[j] = j;
            siftUp(hv, hi, j);
        }
        for (int j = k; j < n; j++) {
            float v = Widening.getF32(s, base + j);
            if (before(v, j, hv[0], hi[0])) {
                hv[0] = v;
                hi[0] = j;
                siftDown(hv, hi, 0, k);
            }
        }
        for (int size = k; size > 0; size--) {
            outValue[out + size - 1] = hv[0];
            outIndex[out + size - 1] = hi[0];
            hv[0] = hv[size - 1];
            hi[0] = hi[size - 1];
            siftDown(hv, hi, 0, size - 1);
        }
    }

    /** The heap keeps the element that ranks last at the root. */
    private static void siftUp(float[] hv, int[] hi, int j) {
        while (j > 0) {
            int parent = (j - 1) / 2;
            if (!before(hv[parent], hi[parent], hv[j], hi[j])) {
                break;
            }
            swap(hv, hi, parent, j);
            j = parent;
        }
    }

    private static void siftDown(float[] hv, int[] hi, int j, int size) {
        while (true) {
            int left = 2 * j + 1, worst = j;
            if (left < size && before(hv[worst], hi[worst], hv[left], hi[left])) {
                worst = left;
            }
            if (left + 1 < size && before(hv[worst], hi[worst], hv[left + 1], hi[left + 1])) {
                worst = left + 1;
            }
            if (worst == j) {
                return;
            }
            swap(hv, hi, worst, j);
            j = worst;
        }
    }

    private static void swap(float[] hv, int[] hi, int a, int b) {
        float v = hv[a];
        hv[a] = hv[b];
        hv[b] = v;
        int i = hi[a];
        hi[a] = hi[b];
        hi[b] = i;
    }
}
