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
        return sumStored(scratch, 0);
    }

    /** The lane sum of the vector stored at a[at ..], added in place in the order of {@link #sum(FloatVector)}. */
    private static float sumStored(float[] a, int at) {
        for (int half = LANES / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                a[at + i] += a[at + i + half];
            }
        }
        return a[at];
    }

    /**
     * Lane indices, 16 per round s of {@link #sums}, that pick from two vectors, each holding 2^s accumulators'
     * partial sums (16 >> s lanes apiece), the lower (FOLD_LOW) and the upper (FOLD_HIGH) half of every
     * accumulator's lanes: added, they give 2^(s+1) accumulators with half as many partials, each the sum of lanes i
     * and i + half as {@link #sum(FloatVector, float[])} adds them. Loaded as vectors where they are used, so that the
     * compiler knows the vectors' class exactly.
     */
    private static final float[] FOLD_LOW = new float[64];
    private static final float[] FOLD_HIGH = new float[64];

    static {
        for (int s = 0; s < 4; s++) {
            int width = 16 >> s, half = width / 2, perVector = 1 << s;
            for (int lane = 0; lane < 16; lane++) {
                int slot = lane / half, i = lane % half;
                int at = (slot < perVector ? 0 : 16) + (slot % perVector) * width + i;
                FOLD_LOW[16 * s + lane] = at;
                FOLD_HIGH[16 * s + lane] = at + half;
            }
        }
    }

    /**
     * The lane sums of the {@code accumulators} (8 or 16) accumulators of 16 lanes stored one after another in
     * {@code tile}, left in tile[0 .. accumulators), each added in the order of {@link #sum(FloatVector, float[])}:
     * four rounds of paired lane shuffles and adds for all of them at once, where one at a time takes a store and 15
     * scalar additions each. 16-lane vectors only; tile holds the 16 · accumulators floats. The rounds are a loop so
     * that the compiler sees its vector operations as hot: as straight-line code, run once per call, C2 compiled them
     * early, uninlined, into the Vector API's Java fallback.
     */
    static void sums(float[] tile, int accumulators) {
        int vectors = accumulators;
        for (int s = 0; s < 4; s++) {
            var low = FloatVector.fromArray(F, FOLD_LOW, 16 * s);
            var high = FloatVector.fromArray(F, FOLD_HIGH, 16 * s);
            // with eight accumulators the last round folds a single vector: its upper half is never read
            int pairs = (vectors + 1) / 2;
            for (int p = 0; p < pairs; p++) {
                var a = FloatVector.fromArray(F, tile, 32 * p);
                var b = FloatVector.fromArray(F, tile, 32 * p + 16);
                low.selectFrom(a, b).add(high.selectFrom(a, b)).intoArray(tile, 16 * p);
            }
            vectors = pairs;
        }
    }

    /**
     * How many rows' accumulators decode kernels store before reducing them together with {@link #reduceRows}: 16
     * with 16 lanes, where {@link #sums} reduces them in four rounds of shuffles (a row of 1024 Q4_K or BF16 weights
     * is read in a few hundred cycles, and its reduction alone, a store and 15 dependent scalar additions, took a
     * tenth of a Q4_K_M decode); one elsewhere.
     */
    static final int ROW_GROUP = LANES == 16 ? 16 : 1;

    /**
     * Room for {@link #ROW_GROUP} rows' accumulators, as {@link #reduceRows} needs it: this thread's own, reused, as
     * every decode piece takes one (a new one each was the largest share of a decoded token's allocation, 1 KiB for
     * each of a token's ~1300 pieces on the Qwen3 default). Only for use within one piece of work that makes no
     * parallel call: a thread that helps with other work between pieces then never finds it in use.
     */
    static float[] rowBuffer() {
        return ROW_BUFFER.get();
    }

    private static final ThreadLocal<float[]> ROW_BUFFER = ThreadLocal.withInitial(() -> new float[16 * LANES]);

    /**
     * Leaves in rows[i] the lane sum of the accumulator stored at rows[i · LANES ..], for i below {@code count} (at
     * most {@link #ROW_GROUP}), each in the order of {@link #sum(FloatVector, float[])}.
     */
    static void reduceRows(float[] rows, int count) {
        if (LANES == 16) {
            sums(rows, 16); // slots past count hold earlier rows' values, reduced and ignored
            return;
        }
        for (int r = 0; r < count; r++) {
            rows[r] = sumStored(rows, r * LANES);
        }
    }

    static float sum(FloatVector v) {
        FloatVector s = v;
        for (int k = SHIFTS.length - 1; k >= 0; k--) {
            s = s.add(s.rearrange(SHIFTS[k]));
        }
        return s.lane(0);
    }
}
