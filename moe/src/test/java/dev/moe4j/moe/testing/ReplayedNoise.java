package dev.moe4j.moe.testing;

import java.util.random.RandomGenerator;

/**
 * A random generator whose Gaussian draws are given values, in the order the router draws them: tests feed a
 * router's noise from a reference (the V-MoE fixture's, or a sample the test also hands its float64 reference).
 */
public final class ReplayedNoise {
    private ReplayedNoise() {
    }

    /** Draw i of nextGaussian() returns {@code draws[i]}; any other kind of draw is a test error. */
    public static RandomGenerator of(double[] draws) {
        return new RandomGenerator() {
            private int next;

            @Override
            public long nextLong() {
                throw new UnsupportedOperationException("the router drew other than a Gaussian");
            }

            @Override
            public double nextGaussian() {
                return draws[next++];
            }
        };
    }
}
