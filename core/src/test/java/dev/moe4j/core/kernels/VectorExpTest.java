package dev.moe4j.core.kernels;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VectorExpTest {
    private static float[] apply(boolean tanh, float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i += LANES) {
            var v = FloatVector.fromArray(F, x, i);
            (tanh ? VectorExp.tanh(v) : VectorExp.exp(v)).intoArray(out, i);
        }
        return out;
    }

    @Test
    void expIsWithinTwoUlpsOfTheExactValueOverTheWholeFloatRange() {
        var rnd = new Random(1);
        float[] x = new float[LANES * 4000];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (rnd.nextDouble() * 176 - 87.3);
        }
        float[] y = apply(false, x);
        for (int i = 0; i < x.length; i++) {
            double exact = Math.exp(x[i]);
            assertTrue(Math.abs(y[i] - exact) <= 2 * Math.ulp((float) exact), x[i] + ": " + y[i] + " vs " + exact);
        }
    }

    @Test
    void expHandlesTheEdges() {
        float[] x = new float[LANES];
        float[] in = {0f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, -200f, 100f, 1f, -1f};
        System.arraycopy(in, 0, x, 0, Math.min(in.length, LANES));
        float[] y = apply(false, x);
        assertEquals(1f, y[0]);
        assertEquals(0f, y[1]);
        assertEquals(Float.POSITIVE_INFINITY, y[2]);
        assertTrue(Float.isNaN(y[3]));
        assertEquals(0f, y[4]);
        assertEquals(Float.POSITIVE_INFINITY, y[5]);
        assertEquals((float) Math.E, y[6], Math.ulp((float) Math.E));
    }

    @Test
    void tanhIsAccurateAndOdd() {
        var rnd = new Random(2);
        float[] x = new float[LANES * 1000];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (rnd.nextGaussian() * 4);
        }
        float[] y = apply(true, x);
        for (int i = 0; i < x.length; i++) {
            assertEquals(Math.tanh(x[i]), y[i], 3e-7, "tanh(" + x[i] + ")");
        }
    }
}
