package dev.moe4j.cuda;

import dev.moe4j.core.DType;

/** Elementwise device operations every GPU path shares: dtype conversions and seeded random fills. */
public final class DeviceOps {
    static final String MODULE = "kernels";

    private DeviceOps() {
    }

    /** Blocks for a grid-stride loop over n elements: enough to fill the device, no more than the work. */
    public static int blocks(CudaDevice device, long n, int threads) {
        long needed = (n + threads - 1) / threads;
        return (int) Math.max(1, Math.min(needed, (long) device.multiprocessors() * 16));
    }

    /** A new BF16 tensor holding the values of an F32 one. */
    public static DeviceTensor toBf16(DeviceTensor f32) {
        requireDType(f32, DType.F32);
        CudaDevice d = f32.device();
        DeviceTensor out = d.allocate(DType.BF16, f32.shape());
        d.kernel(MODULE, "convert_f32_to_bf16").launch(blocks(d, f32.size(), 256), 256, f32, out, f32.size());
        return out;
    }

    /** A new F32 tensor holding the values of a BF16 one. */
    public static DeviceTensor toF32(DeviceTensor bf16) {
        requireDType(bf16, DType.BF16);
        CudaDevice d = bf16.device();
        DeviceTensor out = d.allocate(DType.F32, bf16.shape());
        d.kernel(MODULE, "convert_bf16_to_f32").launch(blocks(d, bf16.size(), 256), 256, bf16, out, bf16.size());
        return out;
    }

    /**
     * Fills a BF16 tensor with N(0, std²) values from a counter-based hash of (seed, index), so that large random
     * weights are made where they are used.
     */
    public static void fillNormal(DeviceTensor bf16, long seed, double std) {
        requireDType(bf16, DType.BF16);
        CudaDevice d = bf16.device();
        d.kernel(MODULE, "fill_normal_bf16").launch(blocks(d, bf16.size(), 256), 256, bf16, bf16.size(), seed, (float) std);
    }

    static void requireDType(DeviceTensor t, DType dtype) {
        if (t.dtype() != dtype) {
            throw new IllegalArgumentException("expected a " + dtype + " tensor, got " + t);
        }
    }
}
