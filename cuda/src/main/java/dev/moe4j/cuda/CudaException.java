package dev.moe4j.cuda;

/**
 * A CUDA driver or cuBLAS call that failed: the message names the call and the library's name for the error
 * (e.g. {@code cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory}), so a failure deep in a kernel sequence
 * says where it happened.
 */
public final class CudaException extends RuntimeException {
    private final String call;
    private final int code;
    private final String errorName;

    public CudaException(String call, int code, String errorName, String description) {
        super(call + ": " + errorName + " (" + code + ")" + (description == null || description.isEmpty() ? "" : ": " + description));
        this.call = call;
        this.code = code;
        this.errorName = errorName;
    }

    /** The function that failed, as the library exports it (e.g. {@code cuLaunchKernel}). */
    public String call() {
        return call;
    }

    /** The library's numeric status. */
    public int code() {
        return code;
    }

    /** The library's name for the status (e.g. {@code CUDA_ERROR_INVALID_VALUE}, {@code CUBLAS_STATUS_NOT_SUPPORTED}). */
    public String errorName() {
        return errorName;
    }
}
