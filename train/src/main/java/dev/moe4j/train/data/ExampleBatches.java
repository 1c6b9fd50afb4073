package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.train.data.BatchSampler.Batch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Batches of whole examples, one sequence each, padded on the right to the longest of the batch. The model's
 * attention is causal, so a token never sees the padding after it: an example's logits are those it has alone, and
 * the padded positions carry no label. Shuffled, the examples come in a fresh permutation every epoch, drawn from
 * (seed, epoch); in order, they come as the file has them; either way a batch depends only on the step and
 * micro-step, so a resumed run sees the batches an uninterrupted one would.
 */
public final class ExampleBatches {
    /** The id on padded positions: any id would do, as nothing reads it. */
    static final int PAD = 0;

    private final List<Example> examples;
    private final int batchSize;
    private final long seed;
    private final boolean shuffle;
    private long permutationEpoch = -1;
    private int[] permutation;

    public ExampleBatches(List<Example> examples, int batchSize, long seed, boolean shuffle) {
        if (examples.isEmpty()) {
            throw new BadInputException("no training examples (every example went to the validation split: lower "
                    + "--valid-fraction)");
        }
        this.examples = List.copyOf(examples);
        this.batchSize = batchSize;
        this.seed = seed;
        this.shuffle = shuffle;
    }

    /** The batch of micro-step {@code micro} (of {@code microSteps}) of optimiser step {@code step}. */
    public synchronized Batch batch(long step, int micro, int microSteps) {
        long first = (step * microSteps + micro) * batchSize;
        int n = examples.size();
        int[] chosen = new int[batchSize];
        for (int b = 0; b < batchSize; b++) {
            long i = first + b;
            int at = (int) (i % n);
            chosen[b] = shuffle ? permutation(i / n)[at] : at;
        }
        return pad(examples, chosen);
    }

    private int[] permutation(long epoch) {
        if (epoch != permutationEpoch) {
            int[] p = new int[examples.size()];
            Arrays.setAll(p, i -> i);
            var rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch * 0xD1B54A32D192ED03L + 0x2545F4914F6CDD1DL);
            for (int i = p.length - 1; i > 0; i--) {
                int j = rnd.nextInt(i + 1);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
            permutation = p;
            permutationEpoch = epoch;
        }
        return permutation;
    }

    /** The validation examples in order, {@code batchSize} a batch (the last may hold fewer), at most {@code maxBatches}. */
    public static List<Batch> evaluationBatches(List<Example> examples, int batchSize, int maxBatches) {
        var out = new ArrayList<Batch>();
        for (int from = 0; from < examples.size() && out.size() < maxBatches; from += batchSize) {
            int[] chosen = new int[Math.min(batchSize, examples.size() - from)];
            Arrays.setAll(chosen, i -> i);
            out.add(pad(examples.subList(from, from + chosen.length), chosen));
        }
        return out;
    }

    /** Examples {@code chosen} of {@code examples}, padded to the longest: position t's target is label t + 1. */
    static Batch pad(List<Example> examples, int[] chosen) {
        int length = 0;
        for (int c : chosen) {
            length = Math.max(length, examples.get(c).length());
        }
        int[] inputs = new int[chosen.length * length], targets = new int[chosen.length * length];
        int[] lengths = new int[chosen.length];
        Arrays.fill(inputs, PAD);
        Arrays.fill(targets, Graph.IGNORE);
        for (int b = 0; b < chosen.length; b++) {
            Example e = examples.get(chosen[b]);
            System.arraycopy(e.ids(), 0, inputs, b * length, e.length());
            System.arraycopy(e.labels(), 1, targets, b * length, e.length() - 1);
            lengths[b] = e.length();
        }
        return new Batch(inputs, targets, chosen, lengths);
    }

    /**
     * The examples laid end to end with their labels, for {@code --packing}: windows cut from this stream may hold
     * parts of several examples, which then attend to each other. Each example's first token is not predicted from
     * the end of the one before.
     */
    public static TokenStream pack(List<Example> examples) {
        int total = examples.stream().mapToInt(Example::length).sum();
        int[] tokens = new int[total], labels = new int[total], starts = new int[examples.size()];
        var names = new ArrayList<String>();
        int at = 0;
        for (int d = 0; d < examples.size(); d++) {
            Example e = examples.get(d);
            starts[d] = at;
            names.add(e.name());
            System.arraycopy(e.ids(), 0, tokens, at, e.length());
            System.arraycopy(e.labels(), 0, labels, at, e.length());
            labels[at] = Graph.IGNORE;
            at += e.length();
        }
        return new TokenStream(tokens, starts, names, labels);
    }
}
