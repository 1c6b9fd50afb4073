package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;

import java.util.EnumMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The GPU the tests share, or a skipped test where there is none (CI). */
public final class Gpu {
    private static final Map<Precision, CudaDevice> devices = new EnumMap<>(Precision.class);

    private Gpu() {
    }

    /** GPU 0 in BF16, opened once per test JVM; skips the calling test when no CUDA driver or GPU is found. */
    public static CudaDevice device() {
        return device(Precision.BF16);
    }

    /** GPU 0 computing in {@code precision}, opened once per test JVM and precision; skips without a GPU. */
    public static synchronized CudaDevice device(Precision precision) {
        assumeTrue(Cuda.available(), () -> "no GPU here: " + Cuda.unavailableReason());
        CudaDevice device = devices.computeIfAbsent(precision, p -> {
            CudaDevice d = Cuda.open(0, p);
            System.out.println("GPU tests on " + d.describe() + " in " + p.label());
            return d;
        });
        device.makeCurrent();
        return device;
    }

    /** Normal F32 values already rounded to BF16, so that host and device start from the same numbers. */
    public static Tensor bf16Normal(Random random, double std, int... shape) {
        return RandomTensors.normal(random, std, DType.BF16, shape).to(DType.F32);
    }

    /** The values of a tensor, on the host or a GPU, as floats. */
    public static float[] asFloats(Tensor t) {
        return t.toHost().toFloatArray();
    }

    /** The values of a tensor, on the host or a GPU, as doubles. */
    public static double[] values(Tensor t) {
        Tensor h = t.toHost();
        double[] out = new double[(int) h.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = h.getFloat(i);
        }
        return out;
    }
}
