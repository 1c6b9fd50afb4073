package dev.moe4j.core.kernels;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Rotary position embedding, in place, on x [tokens, heads·headDim] (or [tokens, heads, headDim]) with one
 * position per token. Only the first rotaryDim elements of each head turn (partial rotary); the rest pass.
 * Backward applies the transposed rotation (by −θ, with the same scaling), which is the gradient of forward.
 */
public final class Rope {
    private static final int GRAIN = 1 << 14;

    private Rope() {
    }

    /** Rotates each head of token t by the angles of positions[t]. */
    public static void forward(Tensor x, int[] positions, RopeTable t, RopeLayout layout, int headDim, int rotaryDim) {
        rotate("Rope.forward", x, positions, t, layout, headDim, rotaryDim, 1f);
    }

    /** The gradient of {@link #forward}: rotates dx by the opposite angles, in place. */
    public static void backward(Tensor dx, int[] positions, RopeTable t, RopeLayout layout, int headDim, int rotaryDim) {
        rotate("Rope.backward", dx, positions, t, layout, headDim, rotaryDim, -1f);
    }

    private static void rotate(String op, Tensor x, int[] positions, RopeTable t, RopeLayout layout, int headDim,
                               int rotaryDim, float sinSign) {
        Checks.requireF32(op, x);
        int tokens = positions.length;
        Checks.require(rotaryDim == t.rotaryDim(), () -> op + ": rotary dimension " + rotaryDim + " but the table has " + t.rotaryDim());
        Checks.require(rotaryDim % 2 == 0 && rotaryDim <= headDim, () -> op + ": rotary dimension " + rotaryDim + " for heads of " + headDim);
        long perToken = tokens == 0 ? 0 : x.size() / tokens;
        Checks.require(tokens > 0 && perToken * tokens == x.size() && perToken % headDim == 0,
                () -> op + ": " + x + " is not " + tokens + " tokens of whole heads of " + headDim);
        for (int p : positions) {
            Checks.require(p >= 0 && p < t.maxPositions(), () -> op + ": position " + p + " outside the rope table [0, " + t.maxPositions() + ")");
        }
        int heads = (int) (perToken / headDim), half = rotaryDim / 2;
        MemorySegment xs = x.segment();
        MemorySegment cosS = MemorySegment.ofArray(t.cosTable()), sinS = MemorySegment.ofArray(t.sinTable());
        Parallel.forRange(tokens, Checks.minRows((int) Math.min(Integer.MAX_VALUE, perToken), GRAIN), (from, to) -> {
            for (int tok = from; tok < to; tok++) {
                long table = (long) positions[tok] * half;
                for (int h = 0; h < heads; h++) {
                    long base = tok * perToken + (long) h * headDim;
                    if (layout == RopeLayout.HALF) {
                        rotateHalves(xs, base, half, cosS, sinS, table, sinSign);
                    } else {
                        rotatePairs(xs, base, half, cosS, sinS, table, sinSign);
                    }
                }
            }
        });
    }

    /** (a, b) = (x[i], x[i + half]) → (a·cos − b·sin, b·cos + a·sin); products then sums, as transformers rounds. */
    private static void rotateHalves(MemorySegment xs, long base, int half, MemorySegment cosS, MemorySegment sinS,
                                     long table, float sinSign) {
        int i = 0;
        for (int bound = F.loopBound(half); i < bound; i += LANES) {
            FloatVector a = f32(xs, base + i), b = f32(xs, base + half + i);
            FloatVector c = f32(cosS, table + i), s = f32(sinS, table + i).mul(sinSign);
            a.mul(c).sub(b.mul(s)).intoMemorySegment(xs, (base + i) * 4, LE);
            b.mul(c).add(a.mul(s)).intoMemorySegment(xs, (base + half + i) * 4, LE);
        }
        for (; i < half; i++) {
            float a = getF32(xs, base + i), b = getF32(xs, base + half + i);
            float c = getF32(cosS, table + i), s = sinSign * getF32(sinS, table + i);
            setF32(xs, base + i, a * c - b * s);
            setF32(xs, base + half + i, b * c + a * s);
        }
    }

    /** (a, b) = (x[2i], x[2i + 1]) rotated by the angle of pair i. */
    private static void rotatePairs(MemorySegment xs, long base, int half, MemorySegment cosS, MemorySegment sinS,
                                    long table, float sinSign) {
        for (int i = 0; i < half; i++) {
            float a = getF32(xs, base + 2L * i), b = getF32(xs, base + 2L * i + 1);
            float c = getF32(cosS, table + i), s = sinSign * getF32(sinS, table + i);
            setF32(xs, base + 2L * i, a * c - b * s);
            setF32(xs, base + 2L * i + 1, b * c + a * s);
        }
    }
}
