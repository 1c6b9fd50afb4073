package dev.moe4j.core.testing;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

import java.util.Random;

/** Seeded random tensors for kernel tests, in any float dtype (values rounded to that dtype). */
public final class RandomTensors {
    private RandomTensors() {
    }

    /** Standard normal values of the given dtype and shape. */
    public static Tensor normal(Random rnd, DType dtype, int... shape) {
        return normal(rnd, 1.0, dtype, shape);
    }

    /** Normal values with standard deviation {@code std}. */
    public static Tensor normal(Random rnd, double std, DType dtype, int... shape) {
        Tensor t = Tensor.zeros(dtype, shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (rnd.nextGaussian() * std));
        }
        return t;
    }

    /** Standard normal F32 values. */
    public static Tensor normal(Random rnd, int... shape) {
        return normal(rnd, DType.F32, shape);
    }

    /** Uniform values in [lo, hi). */
    public static Tensor uniform(Random rnd, double lo, double hi, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (lo + (hi - lo) * rnd.nextDouble()));
        }
        return t;
    }
}
