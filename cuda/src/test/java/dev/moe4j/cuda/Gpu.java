package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;

import java.util.Random;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The GPU the tests share, or a skipped test where there is none (CI). */
public final class Gpu {
    private static CudaDevice device;

    private Gpu() {
    }

    /** GPU 0, opened once per test JVM; skips the calling test when no CUDA driver or GPU is found. */
    public static synchronized CudaDevice device() {
        assumeTrue(Cuda.available(), () -> "no GPU here: " + Cuda.unavailableReason());
        if (device == null) {
            device = Cuda.open(0);
            System.out.println("GPU tests on " + device.describe());
        }
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
