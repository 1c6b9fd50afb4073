package dev.moe4j.model.transformer;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.config.ModelConfig;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Random weights for models that are measured rather than trained ({@code moe4j bench make-model}): norm weights
 * 1, the MoE layer's matrices (router and experts) N(0, 1/in) so that routing and expert outputs keep a unit scale,
 * every other matrix N(0, initializer_range²), biases N(0, 0.1²): not 0, so that a model whose file misplaces or drops
 * a bias computes visibly other logits (the llama.cpp comparisons rest on these models).
 *
 * <p>Element {@code i} of a weight is a function of the seed, the weight's name and {@code i} alone, so any range of
 * any weight is computed on its own: a GGUF writer computes each chunk as it reaches it, on several threads, in
 * bounded memory, and a model folder built from this source holds the same values. Each value is one of 2¹⁶ fixed
 * standard normal draws, picked by 16 bits of a counter-based hash (a 64-bit mix gives four values): about a
 * nanosecond a value, where drawing a fresh Gaussian costs tens, which matters for the 30 billion of a real MoE's
 * geometry. The values come in tiles that recur ({@link Values}), so that they are quantised quickly too.
 */
public final class RandomWeights implements WeightSource {
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private static final long TILE_KEY = mix(0x711E5L);
    private static final float[] NORMAL = normalTable();
    private static final float BIAS_STD = 0.1f;

    private final long seed;
    private final double std;

    public RandomWeights(ModelConfig config, long seed) {
        this.seed = seed;
        this.std = config.initializerRange();
    }

    private static float[] normalTable() {
        var random = new SplittableRandom(0x5EED_0F_CAFEL);
        float[] t = new float[1 << 16];
        for (int i = 0; i < t.length; i++) {
            t[i] = (float) random.nextGaussian();
        }
        return t;
    }

    @Override
    public Var weight(String name, int... shape) {
        Tensor t = Tensor.zeros(shape);
        MemorySegment data = t.segment();
        long size = t.size();
        int chunk = 1 << 16;
        int chunks = (int) ((size + chunk - 1) / chunk);
        Parallel.forRange(chunks, 1, (from, to) -> {
            float[] buffer = new float[chunk];
            for (int c = from; c < to; c++) {
                long start = (long) c * chunk;
                int n = (int) Math.min(chunk, size - start);
                fill(name, shape, start, buffer, n);
                MemorySegment.copy(buffer, 0, data, ValueLayout.JAVA_FLOAT, 4 * start, n);
            }
        });
        return new Parameter(name, t);
    }

    @Override
    public ExpertStorage expertStorage() {
        return ExpertStorage.SEPARATE;
    }

    /**
     * Elements {@code index .. index + n - 1} of the weight {@code name} (moe4j's name) of {@code shape} into
     * {@code dst[0 .. n - 1]}. Safe to call from several threads at once.
     */
    public void fill(String name, int[] shape, long index, float[] dst, int n) {
        values(name, shape).fill(index, dst, n);
    }

    /** The values of the weight {@code name} (moe4j's name) of {@code shape}. */
    public Values values(String name, int[] shape) {
        if (name.endsWith("norm.weight")) {
            return new Values(0, 1, true);
        }
        if (name.endsWith(".bias")) {
            return new Values(key(name), BIAS_STD, false);
        }
        float scale = (float) (name.contains(".moe.") ? 1 / Math.sqrt(shape[shape.length - 1]) : std);
        return new Values(key(name), scale, false);
    }

    /**
     * One weight's values: runs of {@link #TILE} consecutive values (from a multiple of {@link #TILE}), each one of
     * {@link #TILES} fixed tiles of standard normal values, picked by a hash of the weight's name and the run's
     * index, times the weight's scale. 2¹⁵ tiles (8 million distinct values) leave every row of a matrix its own mix
     * of tiles, while a GGUF writer quantises each tile once per scale and copies it after (a K-quant block costs
     * about 200 ns a value to encode, which made 30 billion values take an hour on two cores).
     *
     * @param constant every value is {@code scale} (norm weights)
     */
    public record Values(long key, float scale, boolean constant) {
        /** Values in a tile; a whole number of blocks of every block type ggml has. */
        public static final int TILE = 256;
        /** Distinct tiles. */
        public static final int TILES = 1 << 15;

        /** Values {@code index .. index + n - 1} into {@code dst[0 .. n - 1]}. */
        public void fill(long index, float[] dst, int n) {
            if (constant) {
                Arrays.fill(dst, 0, n, scale);
                return;
            }
            int i = 0;
            while (i < n) {
                long at = index + i;
                int tile = tileAt(at - at % TILE);
                int from = (int) (at % TILE);
                int count = Math.min(TILE - from, n - i);
                for (int j = 0; j < count; j++) {
                    dst[i + j] = unit(tile, from + j) * scale;
                }
                i += count;
            }
        }

        /** The tile of values {@code index .. index + TILE - 1}, {@code index} a multiple of {@link #TILE}. */
        public int tileAt(long index) {
            return constant ? 0 : (int) (mix(key + (index / TILE) * GOLDEN) & (TILES - 1));
        }

        /** The values of tile {@code tile}, as {@link #fill} gives them wherever it recurs. */
        public void fillTile(int tile, float[] dst) {
            for (int j = 0; j < TILE; j++) {
                dst[j] = constant ? scale : unit(tile, j) * scale;
            }
        }

        /** Value {@code j} of tile {@code tile} before scaling: 16 bits of a hash pick one of the fixed draws. */
        private static float unit(int tile, int j) {
            long value = (long) tile * TILE + j;
            long word = mix(TILE_KEY + (value >>> 2) * GOLDEN);
            return NORMAL[(int) (word >>> (16 * (value & 3))) & 0xFFFF];
        }
    }

    private long key(String name) {
        long h = mix(seed ^ GOLDEN);
        for (int i = 0; i < name.length(); i++) {
            h = mix(h + name.charAt(i));
        }
        return h;
    }

    /** A 64-bit finaliser (MurmurHash3's fmix64): every input bit moves every output bit. */
    private static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xFF51AFD7ED558CCDL;
        z = (z ^ (z >>> 33)) * 0xC4CEB93FE1A85EC3L;
        return z ^ (z >>> 33);
    }
}
