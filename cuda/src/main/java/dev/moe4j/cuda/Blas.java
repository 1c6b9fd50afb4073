package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Row-major matrix products on a device through cuBLAS (cublasGemmEx), with BF16 (or F16, F32) operands, F32
 * accumulation and an F32 or BF16 result.
 *
 * <p>cuBLAS is column-major: a row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so every call
 * swaps the operands and passes the row-major leading dimensions unchanged.
 */
public final class Blas implements AutoCloseable {
    private final Cublas cublas;
    private final MemorySegment handle;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment alpha;
    private final MemorySegment beta;

    Blas(CudaDevice device, Cublas cublas) {
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
    public void linear(Tensor y, Tensor x, Tensor w, float beta) {
        int m = x.rows(), in = x.cols(), out = w.rows();
        require(w.cols() == in && y.rows() == m && y.cols() == out, "linear", y, x, w);
        if (m == 0) {
            return;
        }
        gemm(false, true, m, out, in, 1f, x.address(), x.dtype(), in, w.address(), w.dtype(), in, beta, y.address(),
                y.dtype(), out);
    }

    /** y [m, n] = a [m, k] · b [k, n] + beta·y (b stored [in, out]). */
    public void multiply(Tensor y, Tensor a, Tensor b, float beta) {
        int m = a.rows(), k = a.cols(), n = b.cols();
        require(b.rows() == k && y.rows() == m && y.cols() == n, "multiply", y, a, b);
        if (m == 0) {
            return;
        }
        gemm(false, false, m, n, k, 1f, a.address(), a.dtype(), k, b.address(), b.dtype(), n, beta, y.address(),
                y.dtype(), n);
    }

    /** dx [m, in] = dy [m, out] · w [out, in] + beta·dx. */
    public void linearBackwardInput(Tensor dx, Tensor dy, Tensor w, float beta) {
        int m = dy.rows(), out = dy.cols(), in = w.cols();
        require(w.rows() == out && dx.rows() == m && dx.cols() == in, "linearBackwardInput", dx, dy, w);
        if (m == 0) {
            return;
        }
        gemm(false, false, m, in, out, 1f, dy.address(), dy.dtype(), out, w.address(), w.dtype(), in, beta,
                dx.address(), dx.dtype(), in);
    }

    /** dw [out, in] = dy [m, out]ᵀ · x [m, in] + beta·dw. */
    public void linearBackwardWeight(Tensor dw, Tensor dy, Tensor x, float beta) {
        int m = dy.rows(), out = dy.cols(), in = x.cols();
        require(x.rows() == m && dw.rows() == out && dw.cols() == in, "linearBackwardWeight", dw, dy, x);
        if (m == 0) {
            return;
        }
        gemm(true, false, out, in, m, 1f, dy.address(), dy.dtype(), out, x.address(), x.dtype(), in, beta,
                dw.address(), dw.dtype(), in);
    }

    private static void require(boolean ok, String what, Tensor... tensors) {
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
