package dev.moe4j.cuda;

import dev.moe4j.core.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Row-major matrix products on a device through cuBLAS, with BF16 (or F16, F32) operands and F32 accumulation,
 * in the three shapes of a linear layer with [out, in] weights: {@link #linear} (y = x·Wᵀ),
 * {@link #linearBackwardInput} (dx = dy·W) and {@link #linearBackwardWeight} (dW = dyᵀ·x), each also grouped over
 * experts whose rows are consecutive blocks of one matrix.
 *
 * <p>cuBLAS is column-major: a row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so every call
 * swaps the operands and passes the row-major leading dimensions unchanged.
 */
public final class Blas implements AutoCloseable {
    /** How a grouped product reaches cuBLAS. */
    public enum Grouping {
        /** One cublasGemmEx per group with rows: large groups run at the library's full rate. */
        LOOP,
        /**
         * One cublasGemmGroupedBatchedEx over all groups (CUDA 12.5 on): one launch for many small groups. It
         * takes one dtype for inputs and output; cuBLAS 13.1 answered CUBLAS_STATUS_NOT_SUPPORTED for BF16 inputs
         * with an F32 output (H100, seen here), so such products (the F32 weight gradients) run as {@link #LOOP}.
         */
        GROUPED
    }

    private final CudaDevice device;
    private final Cublas cublas;
    private final MemorySegment handle;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private Grouping grouping = Grouping.LOOP;

    Blas(CudaDevice device, Cublas cublas) {
        this.device = device;
        this.cublas = cublas;
        this.handle = cublas.create();
        cublas.setStream(handle, device.stream());
        this.alpha = arena.allocate(JAVA_FLOAT);
        this.beta = arena.allocate(JAVA_FLOAT);
    }

    /** The cuBLAS library file and version, e.g. "libcublas.so.13 (130100)". */
    public String describe() {
        return cublas.file() + " (version " + cublas.version(handle) + ")";
    }

    public boolean hasGroupedGemm() {
        return cublas.hasGroupedGemm();
    }

    public Grouping grouping() {
        return grouping;
    }

    /** Chooses how grouped products run (default {@link Grouping#LOOP}). */
    public void grouping(Grouping grouping) {
        this.grouping = grouping;
    }

    static int type(DType dtype) {
        return switch (dtype) {
            case BF16 -> Cublas.R_16BF;
            case F16 -> Cublas.R_16F;
            case F32 -> Cublas.R_32F;
            default -> throw new IllegalArgumentException("cuBLAS products take BF16, F16 or F32, not " + dtype);
        };
    }

    /**
     * C [m, n] = alpha·op(A)·op(B) + beta·C, all row-major: op(A) is A [m, k] or, when transA, Aᵀ of A stored
     * [k, m]; likewise op(B) is B [k, n] or Bᵀ of B stored [n, k]. ld* are the stored row lengths.
     */
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alphaValue, long a, DType aType,
                     int lda, long b, DType bType, int ldb, float betaValue, long c, DType cType, int ldc) {
        alpha.set(JAVA_FLOAT, 0, alphaValue);
        beta.set(JAVA_FLOAT, 0, betaValue);
        cublas.gemmEx(handle, transB ? Cublas.OP_T : Cublas.OP_N, transA ? Cublas.OP_T : Cublas.OP_N, n, m, k, alpha,
                b, type(bType), ldb, a, type(aType), lda, beta, c, type(cType), ldc);
    }

    /** y [m, out] = x [m, in] · w [out, in]ᵀ + beta·y. */
    public void linear(DeviceTensor y, DeviceTensor x, DeviceTensor w, float beta) {
        int m = x.rows(), in = x.cols(), out = w.rows();
        require(w.cols() == in && y.rows() == m && y.cols() == out, "linear", y, x, w);
        if (m == 0) {
            return;
        }
        gemm(false, true, m, out, in, 1f, x.address(), x.dtype(), in, w.address(), w.dtype(), in, beta, y.address(),
                y.dtype(), out);
    }

    /** dx [m, in] = dy [m, out] · w [out, in] + beta·dx. */
    public void linearBackwardInput(DeviceTensor dx, DeviceTensor dy, DeviceTensor w, float beta) {
        int m = dy.rows(), out = dy.cols(), in = w.cols();
        require(w.rows() == out && dx.rows() == m && dx.cols() == in, "linearBackwardInput", dx, dy, w);
        if (m == 0) {
            return;
        }
        gemm(false, false, m, in, out, 1f, dy.address(), dy.dtype(), out, w.address(), w.dtype(), in, beta,
                dx.address(), dx.dtype(), in);
    }

    /** dw [out, in] = dy [m, out]ᵀ · x [m, in] + beta·dw. */
    public void linearBackwardWeight(DeviceTensor dw, DeviceTensor dy, DeviceTensor x, float beta) {
        int m = dy.rows(), out = dy.cols(), in = x.cols();
        require(x.rows() == m && dw.rows() == out && dw.cols() == in, "linearBackwardWeight", dw, dy, x);
        if (m == 0) {
            if (beta == 0f) {
                dw.fillZero();
            }
            return;
        }
        gemm(true, false, out, in, m, 1f, dy.address(), dy.dtype(), out, x.address(), x.dtype(), in, beta,
                dw.address(), dw.dtype(), in);
    }

    // ---- grouped over experts: rows offsets[e] .. offsets[e+1] belong to expert e ----

    /** y[rows of e] = x[rows of e] · w[e]ᵀ + beta·y for every expert e; w is [E, out, in]. */
    public void groupedLinear(DeviceTensor y, DeviceTensor x, DeviceTensor w, int[] offsets, float beta) {
        int out = w.dim(1), in = w.dim(2);
        requireGrouped(w, offsets, x, y);
        if (useGrouped(x, w, y)) {
            grouped(false, true, offsets, out, in, x, in, w, in, beta, y, out, false);
            return;
        }
        for (int e = 0; e + 1 < offsets.length; e++) {
            if (offsets[e + 1] > offsets[e]) {
                linear(y.slice(offsets[e], offsets[e + 1]), x.slice(offsets[e], offsets[e + 1]), w.select(e), beta);
            }
        }
    }

    /** dx[rows of e] = dy[rows of e] · w[e] + beta·dx; w is [E, out, in]. */
    public void groupedLinearBackwardInput(DeviceTensor dx, DeviceTensor dy, DeviceTensor w, int[] offsets, float beta) {
        int out = w.dim(1), in = w.dim(2);
        requireGrouped(w, offsets, dy, dx);
        if (useGrouped(dy, w, dx)) {
            grouped(false, false, offsets, in, out, dy, out, w, in, beta, dx, in, false);
            return;
        }
        for (int e = 0; e + 1 < offsets.length; e++) {
            if (offsets[e + 1] > offsets[e]) {
                linearBackwardInput(dx.slice(offsets[e], offsets[e + 1]), dy.slice(offsets[e], offsets[e + 1]),
                        w.select(e), beta);
            }
        }
    }

    /** dw[e] = dy[rows of e]ᵀ · x[rows of e] + beta·dw[e]; dw is [E, out, in]. */
    public void groupedLinearBackwardWeight(DeviceTensor dw, DeviceTensor dy, DeviceTensor x, int[] offsets, float beta) {
        int out = dw.dim(1), in = dw.dim(2);
        requireGrouped(dw, offsets, dy, x);
        boolean any = false;
        for (int e = 0; e + 1 < offsets.length; e++) {
            if (offsets[e + 1] == offsets[e] && beta == 0f) {
                dw.select(e).fillZero(); // an expert without rows has a zero gradient, not last step's
            }
            any |= offsets[e + 1] > offsets[e];
        }
        if (any && useGrouped(dy, x, dw)) {
            grouped(true, false, offsets, out, in, dy, out, x, in, beta, dw, in, true);
            return;
        }
        for (int e = 0; e + 1 < offsets.length; e++) {
            if (offsets[e + 1] > offsets[e]) {
                linearBackwardWeight(dw.select(e), dy.slice(offsets[e], offsets[e + 1]), x.slice(offsets[e], offsets[e + 1]),
                        beta);
            }
        }
    }

    /**
     * One cublasGemmGroupedBatchedEx with a group per expert that has rows. For the forward and input-gradient
     * products, C's rows of expert e [rows, n] = A's rows of e [rows, kOrOut] · op(w[e]); for the weight gradient,
     * C = dw[e] [n, kOrOut] = (A's rows of e)ᵀ · B's rows of e, the rows being the reduction.
     */
    private void grouped(boolean transA, boolean transB, int[] offsets, int n, int kOrOut,
                         DeviceTensor a, int lda, DeviceTensor b, int ldb, float betaValue, DeviceTensor c, int ldc,
                         boolean weightGradient) {
        int experts = offsets.length - 1, groups = 0;
        for (int e = 0; e < experts; e++) {
            groups += offsets[e + 1] > offsets[e] ? 1 : 0;
        }
        if (groups == 0) {
            return;
        }
        long aBytes = a.dtype().byteSize(), bBytes = b.dtype().byteSize(), cBytes = c.dtype().byteSize();
        try (var local = Arena.ofConfined()) {
            MemorySegment opA = local.allocate(JAVA_INT, groups), opB = local.allocate(JAVA_INT, groups);
            MemorySegment ms = local.allocate(JAVA_INT, groups), ns = local.allocate(JAVA_INT, groups);
            MemorySegment ks = local.allocate(JAVA_INT, groups), ldas = local.allocate(JAVA_INT, groups);
            MemorySegment ldbs = local.allocate(JAVA_INT, groups), ldcs = local.allocate(JAVA_INT, groups);
            MemorySegment sizes = local.allocate(JAVA_INT, groups);
            MemorySegment alphas = local.allocate(JAVA_FLOAT, groups), betas = local.allocate(JAVA_FLOAT, groups);
            MemorySegment pointers = local.allocate(JAVA_LONG, 3L * groups);
            int g = 0;
            for (int e = 0; e < experts; e++) {
                int rows = offsets[e + 1] - offsets[e];
                if (rows == 0) {
                    continue;
                }
                // Column-major call for row-major C = op(A)·op(B): swap operands, (m, n) = (n, m).
                long aAddress, bAddress, cAddress;
                int m, nn, k;
                if (weightGradient) {
                    // dw[e] [out, in] = dyᵀ [out, rows] · x [rows, in]; here n = out, kOrOut = in.
                    m = kOrOut;
                    nn = n;
                    k = rows;
                    aAddress = a.address() + offsets[e] * (long) lda * aBytes;
                    bAddress = b.address() + offsets[e] * (long) ldb * bBytes;
                    cAddress = c.address() + e * (long) n * ldc * cBytes;
                } else {
                    // C rows of e [rows, n] = A rows of e [rows, kOrOut] · op(w[e]).
                    m = n;
                    nn = rows;
                    k = kOrOut;
                    aAddress = a.address() + offsets[e] * (long) lda * aBytes;
                    bAddress = b.address() + e * (long) b.dim(1) * b.dim(2) * bBytes;
                    cAddress = c.address() + offsets[e] * (long) ldc * cBytes;
                }
                opA.setAtIndex(JAVA_INT, g, transB ? Cublas.OP_T : Cublas.OP_N);
                opB.setAtIndex(JAVA_INT, g, transA ? Cublas.OP_T : Cublas.OP_N);
                ms.setAtIndex(JAVA_INT, g, m);
                ns.setAtIndex(JAVA_INT, g, nn);
                ks.setAtIndex(JAVA_INT, g, k);
                ldas.setAtIndex(JAVA_INT, g, ldb);
                ldbs.setAtIndex(JAVA_INT, g, lda);
                ldcs.setAtIndex(JAVA_INT, g, ldc);
                sizes.setAtIndex(JAVA_INT, g, 1);
                alphas.setAtIndex(JAVA_FLOAT, g, 1f);
                betas.setAtIndex(JAVA_FLOAT, g, betaValue);
                pointers.setAtIndex(JAVA_LONG, g, bAddress);
                pointers.setAtIndex(JAVA_LONG, groups + g, aAddress);
                pointers.setAtIndex(JAVA_LONG, 2L * groups + g, cAddress);
                g++;
            }
            try (DeviceTensor table = device.allocate(DType.I64, 3 * groups)) {
                table.copyFromNative(pointers);
                cublas.gemmGroupedBatchedEx(handle, opA, opB, ms, ns, ks, alphas, table.address(), type(b.dtype()), ldas,
                        table.address() + 8L * groups, type(a.dtype()), ldbs, betas, table.address() + 16L * groups,
                        type(c.dtype()), ldcs, groups, sizes);
            }
        }
    }

    private boolean useGrouped(DeviceTensor a, DeviceTensor b, DeviceTensor c) {
        return grouping == Grouping.GROUPED && a.dtype() == c.dtype() && b.dtype() == c.dtype();
    }

    private static void requireGrouped(DeviceTensor w, int[] offsets, DeviceTensor rowsA, DeviceTensor rowsB) {
        if (w.rank() != 3 || offsets.length != w.dim(0) + 1 || offsets[offsets.length - 1] > rowsA.rows()
                || rowsA.rows() != rowsB.rows()) {
            throw new IllegalArgumentException("grouped product: weights " + w + " (rank 3, one per expert), "
                    + (offsets.length - 1) + " groups over " + rowsA + " and " + rowsB);
        }
    }

    private static void require(boolean ok, String what, DeviceTensor... tensors) {
        if (!ok) {
            throw new IllegalArgumentException(what + ": shapes do not agree: " + java.util.Arrays.toString(tensors));
        }
    }

    @Override
    public void close() {
        cublas.destroy(handle);
        arena.close();
    }
}
