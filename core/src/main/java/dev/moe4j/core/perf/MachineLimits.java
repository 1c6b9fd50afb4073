package dev.moe4j.core.perf;

import dev.moe4j.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * The two limits every kernel benchmark is measured against, taken on this machine in the same run: the peak
 * F32 FMA rate (a register-only Vector API loop with enough independent accumulators to hide FMA latency) and
 * the memory read bandwidth (a vector sum over a buffer far larger than the caches). Both use all of
 * {@link Parallel}'s threads, like the kernels. Best of several trials, since interference only slows things.
 *
 * @param peakGflops  F32 GFLOP/s (an FMA counts as 2 FLOPs) over all threads
 * @param bandwidthGBs streaming read bandwidth, GB/s (10^9 bytes), over all threads
 * @param threads     the thread count both were measured with
 */
public record MachineLimits(double peakGflops, double bandwidthGBs, int threads) {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Independent FMA chains per thread: FMA latency (4 cycles) × FMA ports (2), with room to spare. */
    private static final int CHAINS = 12;
    /** Parts of its share that each thread of the bandwidth test reads side by side. */
    static final int STREAMS = 4;
    /** Bytes read by the bandwidth test: far beyond any last-level cache of today. */
    public static final long DEFAULT_BUFFER_BYTES = 512L << 20;

    /** The better of two measurements of each limit: interference only ever lowers a measurement. */
    public MachineLimits best(MachineLimits other) {
        return new MachineLimits(Math.max(peakGflops, other.peakGflops), Math.max(bandwidthGBs, other.bandwidthGBs), threads);
    }

    /** True when another measurement of the same machine differs by more than {@code fraction} in either limit. */
    public boolean differsFrom(MachineLimits other, double fraction) {
        return Math.abs(peakGflops - other.peakGflops) > fraction * Math.max(peakGflops, other.peakGflops)
                || Math.abs(bandwidthGBs - other.bandwidthGBs) > fraction * Math.max(bandwidthGBs, other.bandwidthGBs);
    }

    /** Measures both limits with the default sizes (a few seconds). */
    public static MachineLimits measure() {
        return measure(5, 200, DEFAULT_BUFFER_BYTES);
    }

    /** Measures both limits: {@code trials} runs of each, FMA runs of {@code peakMillis}, a buffer of {@code bufferBytes}. */
    public static MachineLimits measure(int trials, long peakMillis, long bufferBytes) {
        return new MachineLimits(peakGflops(trials, peakMillis), bandwidthGBs(bufferBytes, trials), Parallel.threads());
    }

    /** The best of {@code trials} runs of {@code millis} ms each of the FMA loop on every thread, in GFLOP/s. */
    public static double peakGflops(int trials, long millis) {
        int threads = Parallel.threads();
        long iterations = calibrate(millis);
        double best = 0;
        for (int t = 0; t < trials; t++) {
            var sink = new DoubleAdder();
            long start = System.nanoTime();
            Parallel.forRange(threads, 1, (from, to) -> {
                for (int i = from; i < to; i++) {
                    sink.add(fmaLoop(iterations));
                }
            });
            long nanos = System.nanoTime() - start;
            if (sink.sum() == 42.0) { // keeps the loops alive; never true
                System.out.print("");
            }
            best = Math.max(best, (double) threads * iterations * CHAINS * F.length() * 2 / nanos);
        }
        return best;
    }

    /** Iterations of the FMA loop that take about {@code millis} ms on one thread (after warming it up). */
    private static long calibrate(long millis) {
        for (int i = 0; i < 200; i++) { // compile the whole method, not only its loop
            fmaLoop(1 << 10);
        }
        long iterations = 1 << 16;
        while (true) {
            long start = System.nanoTime();
            fmaLoop(iterations);
            long nanos = System.nanoTime() - start;
            if (nanos > 20_000_000L) {
                return Math.max(1, iterations * millis * 1_000_000L / nanos);
            }
            iterations *= 2;
        }
    }

    /** CHAINS independent chains acc = acc·a + b: they converge to b/(1−a), never overflow nor go subnormal. */
    static float fmaLoop(long iterations) {
        var a = FloatVector.broadcast(F, 0.999f);
        var b = FloatVector.broadcast(F, 0.001f);
        var c0 = FloatVector.broadcast(F, 1f);
        var c1 = FloatVector.broadcast(F, 2f);
        var c2 = FloatVector.broadcast(F, 3f);
        var c3 = FloatVector.broadcast(F, 4f);
        var c4 = FloatVector.broadcast(F, 5f);
        var c5 = FloatVector.broadcast(F, 6f);
        var c6 = FloatVector.broadcast(F, 7f);
        var c7 = FloatVector.broadcast(F, 8f);
        var c8 = FloatVector.broadcast(F, 9f);
        var c9 = FloatVector.broadcast(F, 10f);
        var c10 = FloatVector.broadcast(F, 11f);
        var c11 = FloatVector.broadcast(F, 12f);
        for (long i = 0; i < iterations; i++) {
            c0 = c0.fma(a, b);
            c1 = c1.fma(a, b);
            c2 = c2.fma(a, b);
            c3 = c3.fma(a, b);
            c4 = c4.fma(a, b);
            c5 = c5.fma(a, b);
            c6 = c6.fma(a, b);
            c7 = c7.fma(a, b);
            c8 = c8.fma(a, b);
            c9 = c9.fma(a, b);
            c10 = c10.fma(a, b);
            c11 = c11.fma(a, b);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11)
                .reduceLanes(VectorOperators.ADD);
    }

    /**
     * Streaming read bandwidth in GB/s: every thread sums its share of an off-heap buffer of {@code bytes}
     * (touched first, so page faults are not timed), reading {@link #STREAMS} parts of it side by side: one
     * sequential stream per core leaves memory idle between misses, and kernels that read several weight rows at
     * once get more than that. The best of {@code trials} passes.
     */
    public static double bandwidthGBs(long bytes, int trials) {
        int threads = Parallel.threads();
        long unit = (long) STREAMS * F.length();
        long floats = bytes / 4 / (unit * threads) * (unit * threads);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(floats * 4, 64);
            int chunks = threads * 64;
            Parallel.forRange(chunks, 1, (from, to) -> {
                long a = floats * from / chunks, b = floats * to / chunks;
                buffer.asSlice(a * 4, (b - a) * 4).fill((byte) 1);
            });
            for (int i = 0; i < 200; i++) { // compile the whole method, not only its loop
                sum(buffer, 0, unit);
            }
            double best = 0;
            for (int t = 0; t < trials + 1; t++) {
                var sink = new DoubleAdder();
                long start = System.nanoTime();
                Parallel.forRange(threads, 1, (from, to) -> {
                    for (int th = from; th < to; th++) {
                        long share = floats / threads;
                        sink.add(sum(buffer, th * share, share));
                    }
                });
                long nanos = System.nanoTime() - start;
                if (sink.sum() == 42.0) {
                    System.out.print("");
                }
                if (t > 0) { // the first pass warms the code up
                    best = Math.max(best, (double) floats * 4 / nanos);
                }
            }
            return best;
        }
    }

    /** Σ of floats [from, from + count) read as STREAMS parts side by side; count is a multiple of STREAMS vectors. */
    static float sum(MemorySegment s, long from, long count) {
        int lanes = F.length();
        long part = count / STREAMS;
        long p0 = from * 4, p1 = (from + part) * 4, p2 = (from + 2 * part) * 4, p3 = (from + 3 * part) * 4;
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        var a2 = a0;
        var a3 = a0;
        for (long i = 0; i < part * 4; i += lanes * 4L) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, s, p0 + i, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(F, s, p1 + i, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(F, s, p2 + i, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(F, s, p3 + i, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
    }
}
