package dev.moe4j.cuda.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;

import java.util.Arrays;

/**
 * The two ceilings a GPU benchmark is measured against, taken in the same run: the BF16 matrix rate of cuBLAS on
 * a large square product (random data) and the device memory bandwidth of a large device-to-device copy (bytes
 * read plus bytes written).
 */
public record GpuLimits(double matmulTflops, int matmulSize, double bandwidthBytesPerSecond, long copyBytes) {

    /** Measures both; {@code quick} uses small sizes that only check the code runs. */
    public static GpuLimits measure(CudaDevice device, boolean quick) {
        int n = quick ? 1024 : 8192;
        double tflops;
        try (var scope = MemoryScope.open()) {
            Tensor a = device.allocate(DType.BF16, n, n), b = device.allocate(DType.BF16, n, n);
            Tensor c = device.allocate(DType.BF16, n, n);
            DeviceOps.fillNormal(a, 1, 1);
            DeviceOps.fillNormal(b, 2, 1);
            double ms = medianMillis(device, quick ? 2 : 5, quick ? 3 : 20, () -> device.blas().linear(c, a, b, 0f));
            tflops = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
        }
        long bytes = quick ? 64L << 20 : 2L << 30;
        return new GpuLimits(tflops, n, measureBandwidth(device, quick), bytes);
    }

    /** Device memory bandwidth (bytes/s): a large device-to-device copy, bytes read plus bytes written. */
    public static double measureBandwidth(CudaDevice device, boolean quick) {
        long bytes = quick ? 64L << 20 : 2L << 30;
        double bandwidth;
        try (var scope = MemoryScope.open()) {
            Tensor from = device.allocate(DType.U8, (int) (bytes >> 20), 1 << 20);
            Tensor to = device.allocate(DType.U8, (int) (bytes >> 20), 1 << 20);
            from.fill(0f);
            double ms = medianMillis(device, 2, quick ? 3 : 20, () -> to.copyFrom(from));
            bandwidth = 2.0 * bytes / (ms * 1e-3);
        }
        return bandwidth;
    }

    /** The median device time of {@code repeats} runs of the work after {@code warmups}, each timed by events. */
    public static double medianMillis(CudaDevice device, int warmups, int repeats, Runnable work) {
        for (int i = 0; i < warmups; i++) {
            work.run();
        }
        device.synchronize();
        double[] ms = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            try (var start = device.record()) {
                work.run();
                try (var end = device.record()) {
                    ms[i] = end.millisSince(start);
                }
            }
        }
        Arrays.sort(ms);
        return repeats % 2 == 1 ? ms[repeats / 2] : (ms[repeats / 2 - 1] + ms[repeats / 2]) / 2;
    }
}
