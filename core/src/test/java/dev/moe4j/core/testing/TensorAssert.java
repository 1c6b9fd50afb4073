package dev.moe4j.core.testing;

import dev.moe4j.core.Tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Comparisons of computed values with float64 references, by the project's measure: the largest absolute
 * difference relative to the largest absolute reference value (max|Δ| / max|ref|, with max|ref| at least 1e-30).
 */
public final class TensorAssert {
    private TensorAssert() {
    }

    /** max|expected − actual| / max|expected| ≤ tolerance. */
    public static void assertClose(double[] expected, Tensor actual, double tolerance, String what) {
        assertEquals(expected.length, actual.size(), what + ": size");
        double[] a = Reference.values(actual);
        assertClose(expected, a, tolerance, what);
    }

    public static void assertClose(double[] expected, float[] actual, double tolerance, String what) {
        double[] a = new double[actual.length];
        for (int i = 0; i < a.length; i++) {
            a[i] = actual[i];
        }
        assertClose(expected, a, tolerance, what);
    }

    public static void assertClose(double[] expected, double[] actual, double tolerance, String what) {
        assertEquals(expected.length, actual.length, what + ": size");
        double error = relativeError(expected, actual);
        assertTrue(error <= tolerance, what + ": relative error " + error + " > " + tolerance);
    }

    /** max|expected − actual| / max|expected|; NaN anywhere in actual where expected is finite counts as infinite. */
    public static double relativeError(double[] expected, double[] actual) {
        double maxRef = 1e-30, maxErr = 0;
        for (int i = 0; i < expected.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(expected[i]));
            double err = Math.abs(expected[i] - actual[i]);
            if (Double.isNaN(err) && !(Double.isNaN(expected[i]) && Double.isNaN(actual[i]))) {
                err = Double.POSITIVE_INFINITY;
            }
            if (!Double.isNaN(err)) {
                maxErr = Math.max(maxErr, err);
            }
        }
        return maxErr / maxRef;
    }
}
