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
 * the memory read bandwidth (vector sums over a buffer far larger than the caches). Both use all of
 * {@link Parallel}'s threads, like the kernels.
 *
 * <p>Each limit is the best of many short timed units of a few milliseconds, the same statistic as a kernel's
 * best call ({@link Timing}): on a shared machine, a best-of-a-few-long-runs limit would be compared with a
 * best-of-many-short-calls kernel and look lower than the kernel.
 *
 * @param peakGflops   F32 GFLOP/s (an FMA counts as 2 FLOPs) over all threads
 * @param bandwidthGBs streaming read bandwidth, GB/s (10^9 bytes), over all threads
 * @param threads      the thread count both were measured with
 */
public record MachineLimits(double peakGflops, double bandwidthGBs, int threads) {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Independent FMA chains per thread: FMA latency (4 cycles) × FMA ports (2), with room to spare. */
    private static final int CHAINS = 12;
    /** Parts of its share that each thread of the bandwidth test reads side by side. */
    static final int STREAMS = 4;
    /** Bytes of the bandwidth buffer: far beyond any last-level cache of today. */
    public static final long DEFAULT_BUFFER_BYTES = 512L << 20;
    /** Bytes read per timed unit: one slice of the buffer, the next slice each time. */
    public static final long DEFAULT_SLICE_BYTES = 64L << 20;

    /** The better of two measurements of each limit: interference only ever lowers a measurement. */
    public MachineLimits best(MachineLimits other) {
        return new MachineLimits(Math.max(peakGflops, other.peakGflops), Math.max(bandwidthGBs, other.bandwidthGBs), threads);
    }

    /** True when another measurement of the same machine differs by more than {@code fraction} in either limit. */
    public boolean differsFrom(MachineLimits other, double fraction) {
        return Math.abs(peakGflops - other.peakGflops) > fraction * Math.max(peakGflops, other.peakGflops)
                || Math.abs(bandwidthGBs - other.bandwidthGBs) > fraction * Math.max(bandwidthGBs, other.bandwidthGBs);
    }

    /** Measures both limits with the default sizes, about a second each. */
    public static MachineLimits measure() {
        return measure(1.0, DEFAULT_BUFFER_BYTES, DEFAULT_SLICE_BYTES);
    }

    /** Measures both limits for about {@code seconds} each, reading {@code sliceBytes} of a {@code bufferBytes} buffer per unit. */
    public static MachineLimits measure(double seconds, long bufferBytes, long sliceBytes) {
        return new MachineLimits(peakGflops(seconds), bandwidthGBs(bufferBytes, sliceBytes, seconds), Parallel.threads());
    }

    /** The best rate of timed units of about 2 ms of the FMA loop on every thread, over about {@code seconds}, in GFLOP/s. */
    public static double peakGflops(double seconds) {
        int threads = Parallel.threads();
        long iterations = calibrate(2);
        Timing t = Timing.measure(() -> {
            var sink = new DoubleAdder();
            Parallel.forRange(threads, 1, (from, to) -> {
                for (int i = from; i < to; i++) {
                    sink.add(fmaLoop(iterations));
                }
            });
            if (sink.sum() == 42.0) { // keeps the loops alive; never true
                System.out.print("");
            }
        }, 20, 20, seconds);
        return (double) threads * iterations * CHAINS * F.length() * 2 / t.bestSeconds() / 1e9;
    }

    /** Iterations of the FMA loop that take about {@code millis} ms on one thread (after compiling it). */
    private static long calibrate(long millis) {
        for (int i = 0; i < 200; i++) { // compile the whole method, not only its loop
            fmaLoop(1 << 10);
        }
        long iterations = 1 << 12;
        while (true) {
            long start = System.nanoTime();
            fmaLoop(iterations);
            long nanos = System.nanoTime() - start;
            if (nanos > 5_000_000L) {
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
     * Streaming read bandwidth in GB/s, the best unit of {@link #readBandwidth}: the statistic that a kernel's best
     * call is compared with.
     */
    public static double bandwidthGBs(long bufferBytes, long sliceBytes, double seconds) {
        return readBandwidth(bufferBytes, sliceBytes, seconds).bestGBs();
    }

    /**
     * The streaming read rate of timed units, GB/s: the best unit, and the median unit, which is what a process
     * that streams for longer than one unit gets (a generation's decode streams for seconds; one unusually fast
     * 64 MiB slice read it to ~80 GB/s on a machine whose sustained rate is ~30).
     */
    public record Bandwidth(double bestGBs, double medianGBs) {
    }

    /**
     * Streaming read bandwidth: an off-heap buffer of {@code bufferBytes} (touched first, so page faults are not
     * timed) is read a slice of {@code sliceBytes} at a time, the next slice each time, so that no slice is still
     * cached when it comes round again; every thread sums its part of the slice as {@link #STREAMS} sequential
     * streams side by side (one stream per core leaves memory idle between misses; kernels that read several
     * weight rows at once get more). Units over about {@code seconds}.
     */
    public static Bandwidth readBandwidth(long bufferBytes, long sliceBytes, double seconds) {
        int threads = Parallel.threads();
        long unit = (long) STREAMS * F.length() * threads;
        long sliceFloats = Math.max(unit, sliceBytes / 4 / unit * unit);
        int slices = (int) Math.max(1, bufferBytes / 4 / sliceFloats);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(sliceFloats * slices * 4, 64);
            int chunks = threads * 64;
            long total = sliceFloats * slices;
            Parallel.forRange(chunks, 1, (from, to) -> {
                long a = total * from / chunks, b = total * to / chunks;
                buffer.asSlice(a * 4, (b - a) * 4).fill((byte) 1);
            });
            for (int i = 0; i < 200; i++) { // compile the whole method, not only its loop
                sum(buffer, 0, (long) STREAMS * F.length());
            }
            int[] next = {0};
            Timing t = Timing.measure(() -> {
                long base = (long) (next[0]++ % slices) * sliceFloats;
                var sink = new DoubleAdder();
                Parallel.forRange(threads, 1, (from, to) -> {
                    long share = sliceFloats / threads;
                    for (int th = from; th < to; th++) {
                        sink.add(sum(buffer, base + th * share, share));
                    }
                });
                if (sink.sum() == 42.0) {
                    System.out.print("");
                }
            }, slices, 2 * slices, seconds);
            double bytes = sliceFloats * 4;
            return new Bandwidth(bytes / t.bestSeconds() / 1e9, bytes / t.medianSeconds() / 1e9);
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
