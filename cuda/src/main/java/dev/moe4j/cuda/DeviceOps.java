package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

/** Device operations outside the {@link CudaBackend}: seeded random fills for weights made where they are used. */
public final class DeviceOps {
    static final String MODULE = "kernels";

    private DeviceOps() {
    }

    /** Blocks for a grid-stride loop over n elements: enough to fill the device, no more than the work. */
    public static int blocks(CudaDevice device, long n, int threads) {
        long needed = (n + threads - 1) / threads;
        return (int) Math.max(1, Math.min(needed, (long) device.multiprocessors() * 16));
    }

    /**
     * Fills a BF16 tensor with N(0, std²) values from a counter-based hash of (seed, index), so that large random
     * weights are made where they are used.
     */
    public static void fillNormal(Tensor bf16, long seed, double std) {
        if (bf16.dtype() != DType.BF16 || !(bf16.device() instanceof CudaDevice d)) {
            throw new IllegalArgumentException("expected a BF16 tensor on a GPU, got " + bf16);
        }
        d.kernel(MODULE, "fill_normal_bf16").launch(blocks(d, bf16.size(), 256), 256, bf16, bf16.size(), seed, (float) std);
    }
}
