package dev.moe4j.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;

/**
 * The sum of a vector's lanes in one fixed order: a tree of lanewise adds (lane i plus lane i + n/2, halving until
 * one lane is left). {@code reduceLanes(ADD)} may add in another order when the JIT compiles it than when it is
 * interpreted, which made the same computation differ by an ulp within one JVM; every kernel reduces through here
 * so that a run is reproducible bit for bit (and a resumed run equals an uninterrupted one).
 */
final class Lanes {
    /** SHIFTS[k] moves lane i + 2^k to lane i (the upper lanes wrap around; only the lower ones are used). */
    private static final VectorShuffle<Float>[] SHIFTS = shifts();

    private Lanes() {
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] shifts() {
        int levels = Integer.numberOfTrailingZeros(LANES);
        var out = new VectorShuffle[levels];
        for (int k = 0; k < levels; k++) {
            int shift = 1 << k;
            out[k] = VectorShuffle.fromOp(F, i -> (i + shift) % LANES);
        }
        return out;
    }

    /**
     * The same sum as {@link #sum(FloatVector)}, in the same order, added in scalar code through {@code scratch} (at
     * least {@link Widening#LANES} floats). Kernels that reduce many accumulators at once use it: eight inlined copies
     * of the vector form took the decode kernel past C2's inlining budget, which then boxed every vector of its loop
     * (BF16 decode ran at a third of its speed, most of the time in the Vector API's Java fallback).
     */
    static float sum(FloatVector v, float[] scratch) {
        v.intoArray(scratch, 0);
        for (int half = LANES / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                scratch[i] += scratch[i + half];
            }
        }
        return scratch[0];
    }

    static float sum(FloatVector v) {
        FloatVector s = v;
        for (int k = SHIFTS.length - 1; k >= 0; k--) {
            s = s.add(s.rearrange(SHIFTS[k]));
        }
        return s.lane(0);
    }
}
