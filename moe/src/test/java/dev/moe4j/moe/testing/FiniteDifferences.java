package dev.moe4j.moe.testing;

import dev.moe4j.core.Tensor;

import java.util.Random;
import java.util.function.DoubleSupplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Central finite differences of a float64 objective against a float32 analytic gradient. The objective reads
 * {@code values} (perturbed in place and restored); a sample of coordinates is checked, every one when small.
 */
public final class FiniteDifferences {
    private static final double STEP = 1e-5;
    private static final double TOLERANCE = 1e-3;

    private FiniteDifferences() {
    }

    /**
     * Asserts |analytic − numeric| ≤ 1e-3 · max(|numeric|, 1e-2 · max|numeric over the sample|) at up to
     * {@code samples} coordinates.
     */
    public static void check(String name, double[] values, Tensor analytic, DoubleSupplier objective, int samples,
                             Random random) {
        int n = values.length;
        int[] coords = n <= samples ? java.util.stream.IntStream.range(0, n).toArray()
                : random.ints(0, n).distinct().limit(samples).toArray();
        double[] numeric = new double[coords.length];
        double scale = 0;
        for (int j = 0; j < coords.length; j++) {
            int i = coords[j];
            double v = values[i];
            values[i] = v + STEP;
            double plus = objective.getAsDouble();
            values[i] = v - STEP;
            double minus = objective.getAsDouble();
            values[i] = v;
            numeric[j] = (plus - minus) / (2 * STEP);
            scale = Math.max(scale, Math.abs(numeric[j]));
        }
        assertTrue(scale > 0 || allZero(analytic, coords), name + ": objective does not depend on it");
        for (int j = 0; j < coords.length; j++) {
            double a = analytic.getFloat(coords[j]);
            double err = Math.abs(a - numeric[j]);
            double bound = TOLERANCE * Math.max(Math.abs(numeric[j]), 1e-2 * scale) + 1e-9;
            final int jj = j;
            final double s = scale;
            assertTrue(err <= bound, () -> name + "[" + coords[jj] + "]: analytic " + a + " vs numeric "
                    + numeric[jj] + " (largest numeric " + String.format("%.3g", s) + ")");
        }
    }

    private static boolean allZero(Tensor t, int[] coords) {
        for (int i : coords) {
            if (t.getFloat(i) != 0f) {
                return false;
            }
        }
        return true;
    }

    /** The float32 tensor's values widened to double. */
    public static double[] toDouble(Tensor t) {
        double[] out = new double[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    public static double[] toDouble(float[] a) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i];
        }
        return out;
    }

    /** A tensor of N(0, std²) values. */
    public static Tensor gaussian(Random random, double std, int... shape) {
        float[] v = new float[(int) Tensor.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * std);
        }
        return Tensor.of(v, shape);
    }

    /** max|a − b| / max|b|: the relative error the brief's tolerances are stated in. */
    public static double relativeError(double[] reference, float[] actual) {
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < reference.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(reference[i]));
            maxErr = Math.max(maxErr, Math.abs(reference[i] - actual[i]));
        }
        return maxErr / Math.max(maxRef, 1e-30);
    }
}
