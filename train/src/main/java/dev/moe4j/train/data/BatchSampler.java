package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;

import java.util.SplittableRandom;

/**
 * Cuts (input, target) windows of {@code context + 1} tokens out of a token stream. Shuffled batches draw window
 * starts at random from a generator seeded by (seed, step, micro-step) alone, so a resumed run sees exactly the
 * batches an uninterrupted one would; unshuffled batches take consecutive windows in order.
 */
public final class BatchSampler {
    /**
     * Inputs and next-token targets ({@link Graph#IGNORE} where a position predicts nothing), [sequences · length]
     * each, sequence after sequence, all of one length; {@code starts} says where each sequence came from (a
     * window's start in the stream, or an example's number) and {@code lengths} how many of its positions are
     * tokens, the rest being padding (null: no padding).
     */
    public record Batch(int[] inputs, int[] targets, int[] starts, int[] lengths) {
        public Batch(int[] inputs, int[] targets, int[] starts) {
            this(inputs, targets, starts, null);
        }

        public int sequences() {
            return starts.length;
        }

        /** Which rows hold tokens rather than padding; null when none is padding. */
        public boolean[] tokenRows() {
            if (lengths == null) {
                return null;
            }
            int length = inputs.length / sequences();
            boolean[] rows = new boolean[inputs.length];
            for (int s = 0; s < lengths.length; s++) {
                java.util.Arrays.fill(rows, s * length, s * length + lengths[s], true);
            }
            return rows;
        }

        /** Positions that hold tokens (padding left out). */
        public int tokens() {
            return lengths == null ? inputs.length : java.util.Arrays.stream(lengths).sum();
        }

        /** Positions whose target counts in the loss. */
        public int lossTokens() {
            int n = 0;
            for (int t : targets) {
                n += t == Graph.IGNORE ? 0 : 1;
            }
            return n;
        }
    }

    private final TokenStream stream;
    private final int batchSize;
    private final int context;
    private final long seed;
    private final boolean shuffle;

    public BatchSampler(TokenStream stream, int batchSize, int context, long seed, boolean shuffle) {
        if (stream.length() < context + 1) {
            throw new BadInputException("the training data has " + stream.length() + " tokens, fewer than one window of "
                    + (context + 1) + " (context + 1): use more data or a shorter --context");
        }
        this.stream = stream;
        this.batchSize = batchSize;
        this.context = context;
        this.seed = seed;
        this.shuffle = shuffle;
    }

    /** The batch of micro-step {@code micro} (of {@code microSteps}) of optimiser step {@code step}. */
    public Batch batch(long step, int micro, int microSteps) {
        int[] starts = new int[batchSize];
        int windows = stream.length() - context; // valid starts: [0, windows)
        if (shuffle) {
            var rnd = new SplittableRandom(mix(seed, step * microSteps + micro));
            for (int b = 0; b < batchSize; b++) {
                starts[b] = rnd.nextInt(windows);
            }
        } else {
            long first = (step * microSteps + micro) * batchSize;
            int perPass = Math.max(1, windows / context);
            for (int b = 0; b < batchSize; b++) {
                starts[b] = (int) ((first + b) % perPass) * context;
            }
        }
        return cut(starts);
    }

    /** Consecutive, non-overlapping windows from the start of the stream: a fixed validation set. */
    public static Batch[] evaluationBatches(TokenStream stream, int batchSize, int context, int maxBatches) {
        int windows = Math.max(0, (stream.length() - 1) / context);
        int batches = Math.min(maxBatches, windows / batchSize);
        var out = new Batch[batches];
        var sampler = new BatchSampler(stream, batchSize, context, 0, false);
        for (int i = 0; i < batches; i++) {
            int[] starts = new int[batchSize];
            for (int b = 0; b < batchSize; b++) {
                starts[b] = (i * batchSize + b) * context;
            }
            out[i] = sampler.cut(starts);
        }
        return out;
    }

    private Batch cut(int[] starts) {
        int[] inputs = new int[batchSize * context], targets = new int[batchSize * context];
        int[] tokens = stream.tokens();
        int[] labels = stream.labels() != null ? stream.labels() : tokens;
        for (int b = 0; b < batchSize; b++) {
            System.arraycopy(tokens, starts[b], inputs, b * context, context);
            System.arraycopy(labels, starts[b] + 1, targets, b * context, context);
        }
        return new Batch(inputs, targets, starts);
    }

    /** SplitMix64's finaliser over the seed and the counter: neighbouring steps get unrelated generators. */
    private static long mix(long seed, long counter) {
        long z = seed * 0x9E3779B97F4A7C15L + counter + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
