package dev.moe4j.core.perf;

import java.util.Arrays;

/**
 * Seconds per call of a repeated action, after warm-up: the best (the least disturbed run, what the limits are
 * compared with) and the median (what a user should expect on a busy machine).
 *
 * @param bestSeconds   the fastest call
 * @param medianSeconds the median call
 * @param iterations    timed calls
 */
public record Timing(double bestSeconds, double medianSeconds, int iterations) {
    /**
     * Runs {@code action} {@code warmups} times untimed, then times single calls until both {@code minIterations}
     * calls and {@code minSeconds} of timed work are reached.
     */
    public static Timing measure(Runnable action, int warmups, int minIterations, double minSeconds) {
        for (int i = 0; i < warmups; i++) {
            action.run();
        }
        long[] samples = new long[Math.max(16, minIterations)];
        int count = 0;
        long total = 0;
        while (count < minIterations || total < minSeconds * 1e9) {
            long start = System.nanoTime();
            action.run();
            long nanos = System.nanoTime() - start;
            if (count == samples.length) {
                samples = Arrays.copyOf(samples, samples.length * 2);
            }
            samples[count++] = nanos;
            total += nanos;
        }
        long[] sorted = Arrays.copyOf(samples, count);
        Arrays.sort(sorted);
        return new Timing(sorted[0] / 1e9, sorted[count / 2] / 1e9, count);
    }
}
