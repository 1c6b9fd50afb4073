package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;

import java.lang.foreign.MemorySegment;


/**
 * Row gathers: embedding lookups and the permutation of tokens into expert order. Its gradient is
 * {@link ScatterAdd#rows} with the same index.
 */
public final class Gather {
    private Gather() {
    }

    /**
     * out[i] = src[index[i]] for every i < index.length. src may be F32, BF16, F16 or block-quantised (an embedding
     * table as stored); out is either of src's type (a plain copy) or F32 (widened or decoded).
     */
    public static void rows(Tensor out, Tensor src, int[] index) {
        int cols = src.cols(), srcRows = src.rows();
        Checks.require(out.cols() == cols && out.rows() == index.length,
                () -> "Gather.rows: " + out + " is not " + index.length + " rows of " + src);
        Checks.require(out.dtype() == src.dtype() || out.dtype() == DType.F32,
                () -> "Gather.rows: cannot gather " + src.dtype() + " rows into " + out.dtype());
        for (int i = 0; i < index.length; i++) {
            if (index[i] < 0 || index[i] >= srcRows) {
                throw new IndexOutOfBoundsException("Gather.rows: index[" + i + "] = " + index[i] + " outside [0, " + srcRows + ")");
            }
        }
        MemorySegment os = out.segment(), ss = src.segment();
        DType st = src.dtype();
        boolean copy = out.dtype() == st;
        long rowBytes = st.byteCount(cols);
        Parallel.forRange(index.length, Checks.minRows(cols, 1 << 15), (from, to) -> {
            float[] decoded = st.isBlockQuantized() && !copy ? new float[cols] : null;
            for (int i = from; i < to; i++) {
                if (copy) {
                    MemorySegment.copy(ss, index[i] * rowBytes, os, i * rowBytes, rowBytes);
                } else if (decoded != null) {
                    BlockDecode.decode(st, ss, index[i] * rowBytes, 0, decoded, 0, cols);
                    MemorySegment.copy(decoded, 0, os, Widening.FLOAT, i * 4L * cols, cols);
                } else {
                    Widening.widen(st, ss, (long) index[i] * cols, os, (long) i * cols, cols);
                }
            }
        });
    }
}
