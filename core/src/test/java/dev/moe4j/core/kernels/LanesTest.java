package dev.moe4j.core.kernels;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static org.junit.jupiter.api.Assertions.assertEquals;

class LanesTest {
    /** Lane i plus lane i + n/2, halving until one lane is left: the order every reduction in the kernels keeps. */
    private static float tree(float[] lanes) {
        float[] a = lanes.clone();
        for (int half = a.length / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                a[i] += a[i + half];
            }
        }
        return a[0];
    }

    @Test
    void everyFormOfTheLaneSumAddsInTheTreeOrder() {
        var rnd = new Random(7);
        float[] lanes = new float[LANES], scratch = new float[LANES], tile = new float[16 * LANES];
        for (int trial = 0; trial < 2000; trial++) {
            for (int i = 0; i < LANES; i++) {
                // magnitudes far apart, so that another order of additions gives other bits
                lanes[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(8) - 4));
            }
            var v = FloatVector.fromArray(F, lanes, 0);
            float expected = tree(lanes);
            assertEquals(expected, Lanes.sum(v), "Lanes.sum, trial " + trial);
            assertEquals(expected, Lanes.sum(v, scratch), "Lanes.sum with a scratch, trial " + trial);
            if (LANES == 16) {
                v.intoArray(tile, 5 * LANES);
                Lanes.sums(tile, 16);
                assertEquals(expected, tile[5], "Lanes.sums, trial " + trial);
            }
        }
    }
}
