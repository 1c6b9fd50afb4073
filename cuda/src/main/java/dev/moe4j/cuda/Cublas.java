package dev.moe4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS through FFM: handles, streams and the mixed-precision GEMMs ({@code cublasGemmEx}, strided-batched and,
 * where the library has it (CUDA 12.5 on), grouped-batched). cuBLAS is column-major; {@link Blas} turns moe4j's
 * row-major products into these calls.
 */
final class Cublas {
    static final int OP_N = 0;
    static final int OP_T = 1;
    /** cudaDataType values. */
    static final int R_32F = 0;
    static final int R_16F = 2;
    static final int R_16BF = 14;
    /**
     * CUBLAS_COMPUTE_32F, with the handle's default math mode (never changed here): BF16 operands multiply on the
     * tensor cores accumulating in F32, F32 operands in true F32. Never TF32 (CUBLAS_COMPUTE_32F_FAST_TF32 or
     * CUBLAS_TF32_TENSOR_OP_MATH), nor cuBLAS's BF16x9 emulation of F32 (a math mode too): TF32 rounds each F32
     * operand to 10 mantissa bits (2^-11 relative), which alone would keep F32 precision from float32's 1e-4.
     */
    static final int COMPUTE_32F = 68;
    static final int GEMM_DEFAULT = -1;

    private final NativeLibrary library;
    private final MethodHandle create, destroy, setStream, getVersion, gemmEx, gemmStridedBatchedEx;
    private final Optional<MethodHandle> statusName;

    private Cublas(NativeLibrary lib) {
        library = lib;
        create = lib.function("cublasCreate_v2", JAVA_INT, ADDRESS);
        destroy = lib.function("cublasDestroy_v2", JAVA_INT, ADDRESS);
        setStream = lib.function("cublasSetStream_v2", JAVA_INT, ADDRESS, ADDRESS);
        getVersion = lib.function("cublasGetVersion_v2", JAVA_INT, ADDRESS, ADDRESS);
        statusName = lib.optionalFunction("cublasGetStatusName", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        gemmEx = lib.function("cublasGemmEx", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT);
        gemmStridedBatchedEx = lib.function("cublasGemmStridedBatchedEx", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_INT,
                JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT);
    }

    /**
     * Opens libcublas: $MOE4J_LIBCUBLAS, the sonames of CUDA 13 and 12, then the toolkit's folders
     * ($CUDA_HOME, /usr/local/cuda). cuBLAS needs cuBLASLt from its own folder, so that one is opened first.
     */
    static Cublas load() {
        var candidates = new ArrayList<String>();
        String override = System.getenv("MOE4J_LIBCUBLAS");
        if (override != null && !override.isBlank()) {
            candidates.add(override);
        }
        candidates.add("libcublas.so.13");
        candidates.add("libcublas.so.12");
        var folders = new ArrayList<String>();
        for (String env : List.of("CUDA_HOME", "CUDA_PATH")) {
            String v = System.getenv(env);
            if (v != null && !v.isBlank()) {
                folders.add(v + "/lib64");
            }
        }
        folders.addAll(List.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                "/usr/lib/x86_64-linux-gnu"));
        for (String folder : folders) {
            for (String version : List.of("13", "12")) {
                candidates.add(folder + "/libcublas.so." + version);
            }
        }
        for (String candidate : candidates) {
            if (candidate.startsWith("/") && Files.isRegularFile(Path.of(candidate))) {
                // Load cuBLASLt from the same folder so the dynamic linker finds it by soname.
                Path lt = Path.of(candidate).resolveSibling(Path.of(candidate).getFileName().toString()
                        .replace("libcublas.", "libcublasLt."));
                if (Files.isRegularFile(lt)) {
                    try {
                        NativeLibrary.open("cuBLASLt", List.of(lt.toString()));
                    } catch (IllegalStateException ignored) {
                        // cuBLAS itself will report what is missing.
                    }
                }
            }
            try {
                return new Cublas(NativeLibrary.open("cuBLAS", List.of(candidate)));
            } catch (IllegalStateException ignored) {
                // try the next candidate
            }
        }
        throw new IllegalStateException("cuBLAS (libcublas.so.13 or .12) not found; tried " + candidates
                + "; set MOE4J_LIBCUBLAS to its path");
    }

    String file() {
        return library.file();
    }

    void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call, status, statusName(status), null);
        }
    }

    private String statusName(int status) {
        if (statusName.isPresent()) {
            try {
                return NativeLibrary.cString((MemorySegment) statusName.get().invokeExact(status));
            } catch (Throwable t) {
                throw Driver.rethrow(t);
            }
        }
        return switch (status) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "CUBLAS_STATUS_" + status;
        };
    }

    MemorySegment create() {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cublasCreate_v2", (int) create.invokeExact(out));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
    }

    void destroy(MemorySegment handle) {
        try {
            check("cublasDestroy_v2", (int) destroy.invokeExact(handle));
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
    }

    void setStream(MemorySegment handle, MemorySegment stream) {
        try {
            check("cublasSetStream_v2", (int) setStream.invokeExact(handle, stream));
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
    }

    int version(MemorySegment handle) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check("cublasGetVersion_v2", (int) getVersion.invokeExact(handle, out));
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
    }

    /** Column-major C = alpha·op(A)·op(B) + beta·C; alpha and beta point to floats in host memory. */
    void gemmEx(MemorySegment handle, int opA, int opB, int m, int n, int k, MemorySegment alpha, long a, int aType,
                int lda, long b, int bType, int ldb, MemorySegment beta, long c, int cType, int ldc) {
        int status;
        try {
            status = (int) gemmEx.invokeExact(handle, opA, opB, m, n, k, alpha, MemorySegment.ofAddress(a), aType, lda,
                    MemorySegment.ofAddress(b), bType, ldb, beta, MemorySegment.ofAddress(c), cType, ldc, COMPUTE_32F,
                    GEMM_DEFAULT);
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
        if (status != 0) {
            check("cublasGemmEx(op " + opA + "," + opB + ", m " + m + ", n " + n + ", k " + k + ", lda " + lda
                    + ", ldb " + ldb + ", ldc " + ldc + ")", status);
        }
    }

    void gemmStridedBatchedEx(MemorySegment handle, int opA, int opB, int m, int n, int k, MemorySegment alpha, long a,
                              int aType, int lda, long strideA, long b, int bType, int ldb, long strideB,
                              MemorySegment beta, long c, int cType, int ldc, long strideC, int batch) {
        int status;
        try {
            status = (int) gemmStridedBatchedEx.invokeExact(handle, opA, opB, m, n, k, alpha, MemorySegment.ofAddress(a),
                    aType, lda, strideA, MemorySegment.ofAddress(b), bType, ldb, strideB, beta,
                    MemorySegment.ofAddress(c), cType, ldc, strideC, batch, COMPUTE_32F, GEMM_DEFAULT);
        } catch (Throwable t) {
            throw Driver.rethrow(t);
        }
        check("cublasGemmStridedBatchedEx(m " + m + ", n " + n + ", k " + k + ", batch " + batch + ")", status);
    }
}
