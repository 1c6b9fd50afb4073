package dev.moe4j.core.kernels;

import dev.moe4j.core.Parallel;

/** Splits a long run of elements into grain-sized chunks over the worker pool, for elementwise kernels. */
final class Chunks {
    private Chunks() {
    }

    /** Work on the half-open element range [from, to). */
    @FunctionalInterface
    interface LongRange {
        void run(long from, long to);
    }

    /** Runs {@code task} over [0, n): on the calling thread below one grain, else in grain-aligned chunks. */
    static void forElements(long n, int grain, LongRange task) {
        if (n < grain) {
            task.run(0, n);
            return;
        }
        long blocks = (n + grain - 1) / grain;
        Parallel.forRange(Math.toIntExact(blocks), 1, (from, to) ->
                task.run((long) from * grain, Math.min(n, (long) to * grain)));
    }
}
