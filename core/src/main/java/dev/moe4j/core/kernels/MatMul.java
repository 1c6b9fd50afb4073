package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix products in the checkpoint layout: weights are [out, in], so the forward pass is y = x·Wᵀ and every
 * inner product runs along contiguous memory of both operands. Activations and gradients are F32; weights may
 * be F32, BF16 or F16 and are widened to F32 in the kernel, accumulating in F32.
 */
public final class MatMul {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private MatMul() {
    }

    /** out[n, m] = x[n, k] · w[m, k]ᵀ. */
    public static void forward(Tensor out, Tensor x, Tensor w) {
        int n = x.rows(), k = x.cols(), m = w.rows();
        check(w.cols() == k && out.rows() == n && out.cols() == m, "forward", out, x, w);
        requireF32(out, x);
        MemorySegment xs = x.segment(), os = out.segment();
        Parallel.forRange(m, 16, (from, to) -> {
            float[] row = new float[k];
            for (int j = from; j < to; j++) {
                MemorySegment wRow = weightRowAsF32(w, j, row);
                for (int i = 0; i < n; i++) {
                    os.set(ValueLayout.JAVA_FLOAT_UNALIGNED, ((long) i * m + j) * 4, dot(xs, (long) i * k * 4, wRow, 0, k));
                }
            }
        });
    }

    /** dx[n, k] = dy[n, m] · w[m, k], added to dx when {@code accumulate}. */
    public static void backwardInput(Tensor dx, Tensor dy, Tensor w, boolean accumulate) {
        int n = dy.rows(), m = dy.cols(), k = w.cols();
        check(w.rows() == m && dx.rows() == n && dx.cols() == k, "backwardInput", dx, dy, w);
        requireF32(dx, dy);
        MemorySegment dxs = dx.segment(), dys = dy.segment();
        Parallel.forRange(n, 4, (from, to) -> {
            float[] row = new float[k];
            for (int i = from; i < to; i++) {
                long dxRow = (long) i * k * 4;
                if (!accumulate) {
                    dxs.asSlice(dxRow, (long) k * 4).fill((byte) 0);
                }
                for (int j = 0; j < m; j++) {
                    float g = dys.get(ValueLayout.JAVA_FLOAT_UNALIGNED, ((long) i * m + j) * 4);
                    if (g != 0f) {
                        axpy(g, weightRowAsF32(w, j, row), 0, dxs, dxRow, k);
                    }
                }
            }
        });
    }

    /** dw[m, k] = dy[n, m]ᵀ · x[n, k], added to dw when {@code accumulate}. dw is F32. */
    public static void backwardWeight(Tensor dw, Tensor dy, Tensor x, boolean accumulate) {
        int n = dy.rows(), m = dy.cols(), k = x.cols();
        check(x.rows() == n && dw.rows() == m && dw.cols() == k, "backwardWeight", dw, dy, x);
        requireF32(dw, dy, x);
        MemorySegment dws = dw.segment(), dys = dy.segment(), xs = x.segment();
        Parallel.forRange(m, 4, (from, to) -> {
            for (int j = from; j < to; j++) {
                long dwRow = (long) j * k * 4;
                if (!accumulate) {
                    dws.asSlice(dwRow, (long) k * 4).fill((byte) 0);
                }
                for (int i = 0; i < n; i++) {
                    float g = dys.get(ValueLayout.JAVA_FLOAT_UNALIGNED, ((long) i * m + j) * 4);
                    if (g != 0f) {
                        axpy(g, xs, (long) i * k * 4, dws, dwRow, k);
                    }
                }
            }
        });
    }

    /** The j-th weight row as F32: a view for F32 weights, else widened into {@code scratch}. */
    private static MemorySegment weightRowAsF32(Tensor w, int j, float[] scratch) {
        int k = w.cols();
        if (w.dtype() == DType.F32) {
            return w.segment().asSlice((long) j * k * 4, (long) k * 4);
        }
        long base = (long) j * k;
        for (int c = 0; c < k; c++) {
            scratch[c] = w.getFloat(base + c);
        }
        return MemorySegment.ofArray(scratch);
    }

    static float dot(MemorySegment a, long aOffset, MemorySegment b, long bOffset, int k) {
        var acc = FloatVector.zero(F);
        int bound = F.loopBound(k), c = 0;
        for (; c < bound; c += F.length()) {
            var va = FloatVector.fromMemorySegment(F, a, aOffset + (long) c * 4, LE);
            var vb = FloatVector.fromMemorySegment(F, b, bOffset + (long) c * 4, LE);
            acc = va.fma(vb, acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; c < k; c++) {
            sum += a.get(ValueLayout.JAVA_FLOAT_UNALIGNED, aOffset + (long) c * 4)
                    * b.get(ValueLayout.JAVA_FLOAT_UNALIGNED, bOffset + (long) c * 4);
        }
        return sum;
    }

    /** y += a·x over k floats. */
    static void axpy(float a, MemorySegment x, long xOffset, MemorySegment y, long yOffset, int k) {
        int bound = F.loopBound(k), c = 0;
        for (; c < bound; c += F.length()) {
            var vx = FloatVector.fromMemorySegment(F, x, xOffset + (long) c * 4, LE);
            var vy = FloatVector.fromMemorySegment(F, y, yOffset + (long) c * 4, LE);
            vx.fma(FloatVector.broadcast(F, a), vy).intoMemorySegment(y, yOffset + (long) c * 4, LE);
        }
        for (; c < k; c++) {
            long yo = yOffset + (long) c * 4;
            y.set(ValueLayout.JAVA_FLOAT_UNALIGNED, yo, y.get(ValueLayout.JAVA_FLOAT_UNALIGNED, yo)
                    + a * x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOffset + (long) c * 4));
        }
    }

    private static void requireF32(Tensor... tensors) {
        for (Tensor t : tensors) {
            if (t.dtype() != DType.F32) {
                throw new IllegalArgumentException("MatMul needs F32 activations and gradients, got " + t);
            }
        }
    }

    private static void check(boolean ok, String op, Tensor... tensors) {
        if (!ok) {
            throw new IllegalArgumentException("MatMul." + op + ": incompatible shapes " + java.util.Arrays.toString(tensors));
        }
    }
}
