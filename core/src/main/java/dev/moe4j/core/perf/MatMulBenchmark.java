package dev.moe4j.core.perf;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/**
 * The two regimes of y = x·Wᵀ that bound a transformer's speed, measured on this machine: decode (one row of x,
 * bound by reading W: reported as GB/s of weights) and prefill (many rows, bound by FMAs: reported as GFLOP/s).
 * Weights live off the heap, as memory-mapped checkpoints do. Decode rotates through enough copies of W that
 * every call reads its weights from memory, not from a cache that a single copy might fit in.
 */
public final class MatMulBenchmark {
    /** Decode reads at least this many bytes of distinct weights per rotation: several times any L3. */
    public static final long DECODE_ROTATION_BYTES = 256L << 20;

    private MatMulBenchmark() {
    }

    /**
     * One measured product x[n, k] · W[m, k]ᵀ.
     *
     * @param weightType W's element type
     * @param timing     seconds per call
     */
    public record Result(DType weightType, int n, int k, int m, Timing timing) {
        public long weightBytes() {
            return weightType.byteCount((long) m * k);
        }

        public double flops() {
            return 2.0 * n * m * k;
        }

        /** Weight bytes read per second, in GB/s, at the best call. */
        public double weightGBs() {
            return weightBytes() / timing.bestSeconds() / 1e9;
        }

        /** GFLOP/s at the best call. */
        public double gflops() {
            return flops() / timing.bestSeconds() / 1e9;
        }
    }

    /** One row of x against W[m, k] of the given type, rotating through copies of W; at least minSeconds of calls. */
    public static Result decode(DType type, int k, int m, double minSeconds) {
        return decode(type, k, m, minSeconds, DECODE_ROTATION_BYTES);
    }

    /** As {@link #decode(DType, int, int, double)}, with copies of W enough to cover {@code rotationBytes}. */
    public static Result decode(DType type, int k, int m, double minSeconds, long rotationBytes) {
        long bytes = type.byteCount((long) m * k);
        int copies = (int) Math.max(1, (rotationBytes + bytes - 1) / bytes);
        try (Arena arena = Arena.ofShared()) {
            Tensor[] weights = new Tensor[copies];
            for (int c = 0; c < copies; c++) {
                weights[c] = randomWeights(arena, type, m, k, 17 + c);
            }
            Tensor x = randomActivations(1, k, 3), y = Tensor.zeros(1, m);
            int[] next = {0};
            Runnable call = () -> MatMul.forward(y, x, weights[next[0]++ % copies]);
            Timing timing = Timing.measure(call, 2 * copies, 4 * copies, minSeconds);
            return new Result(type, 1, k, m, timing);
        }
    }

    /** n rows of x against one W[m, k] of the given type; at least minSeconds of calls. */
    public static Result prefill(DType type, int n, int k, int m, double minSeconds) {
        try (Arena arena = Arena.ofShared()) {
            Tensor w = randomWeights(arena, type, m, k, 5);
            Tensor x = randomActivations(n, k, 7), y = Tensor.zeros(n, m);
            Timing timing = Timing.measure(() -> MatMul.forward(y, x, w), 2, 3, minSeconds);
            return new Result(type, n, k, m, timing);
        }
    }

    /** Training's input gradient dx[n, k] = dy[n, m] · W[m, k] with W of the given type; at least minSeconds of calls. */
    public static Result inputGradient(DType type, int n, int k, int m, double minSeconds) {
        try (Arena arena = Arena.ofShared()) {
            Tensor w = randomWeights(arena, type, m, k, 5);
            Tensor dy = randomActivations(n, m, 11), dx = Tensor.zeros(n, k);
            return new Result(type, n, k, m, Timing.measure(() -> MatMul.backwardInput(dx, dy, w, false), 2, 3, minSeconds));
        }
    }

    /** Training's weight gradient dW[m, k] = dy[n, m]ᵀ · x[n, k], all F32; at least minSeconds of calls. */
    public static Result weightGradient(int n, int k, int m, double minSeconds) {
        Tensor x = randomActivations(n, k, 7), dy = randomActivations(n, m, 11), dw = Tensor.zeros(m, k);
        return new Result(DType.F32, n, k, m, Timing.measure(() -> MatMul.backwardWeight(dw, dy, x, false), 2, 3, minSeconds));
    }

    /**
     * Off-heap weights of about unit scale / sqrt(k): one random row per 64 rows, repeated (the values do not
     * change the speed; filling hundreds of MiB from a generator would dominate the run).
     */
    static Tensor randomWeights(Arena arena, DType type, int m, int k, long seed) {
        long rowBytes = type.byteCount(k);
        Tensor w = Tensor.wrap(type, arena.allocate(m * rowBytes, 64), m, k);
        var rnd = new Random(seed);
        int distinct = Math.min(m, 64);
        for (int r = 0; r < distinct; r++) {
            float[] row = new float[k];
            for (int c = 0; c < k; c++) {
                row[c] = (float) (rnd.nextGaussian() / Math.sqrt(k));
            }
            w.slice(r, r + 1).copyFrom(Tensor.of(row, 1, k)); // converted (or quantised) to the weight type
        }
        MemorySegment s = w.segment();
        for (int r = distinct; r < m; r++) {
            MemorySegment.copy(s, (r % distinct) * rowBytes, s, r * rowBytes, rowBytes);
        }
        return w;
    }

    static Tensor randomActivations(int n, int k, long seed) {
        var rnd = new Random(seed);
        float[] v = new float[n * k];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Tensor.of(v, n, k);
    }
}
