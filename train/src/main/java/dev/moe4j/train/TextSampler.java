package dev.moe4j.train;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.transformer.KvCache;
import dev.moe4j.model.transformer.Transformer;

import java.util.Arrays;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Text from the model being trained, to see what it learned: the prompt through the KV cache, then tokens drawn
 * one by one from softmax(logits / temperature) over the 50 most likely (greedy at temperature 0), from a seeded
 * generator. For the full set of decoding options, save the checkpoint and use {@code moe4j generate}.
 */
public final class TextSampler {
    private static final int TOP_K = 50;

    private TextSampler() {
    }

    /** The prompt followed by up to {@code tokens} sampled tokens (fewer when an id of {@code stop} comes). */
    public static String sample(Transformer model, Tokenizer tokenizer, String prompt, int tokens, double temperature,
                                long seed, Set<Integer> stop) {
        int[] ids = tokenizer.encodeIds(prompt, false);
        if (ids.length == 0) {
            ids = new int[] {0};
        }
        int capacity = Math.min(model.config().maxPositions(), ids.length + tokens);
        int budget = Math.max(0, capacity - ids.length);
        KvCache cache = model.newCache(capacity);
        var random = new SplittableRandom(seed);
        int[] out = Arrays.copyOf(ids, ids.length + budget);
        int n = ids.length;
        Tensor logits = model.forward(Graph.inference(), cache, ids, true, null).logits().value();
        for (int i = 0; i < budget; i++) {
            int next = draw(logits, temperature, random);
            if (stop.contains(next)) {
                break;
            }
            out[n++] = next;
            if (i + 1 < budget) {
                logits = model.forward(Graph.inference(), cache, new int[] {next}, true, null).logits().value();
            }
        }
        return tokenizer.decode(Arrays.copyOf(out, n), true);
    }

    static int draw(Tensor logits, double temperature, SplittableRandom random) {
        float[] l = logits.toFloatArray();
        if (temperature <= 0) {
            int best = 0;
            for (int i = 1; i < l.length; i++) {
                if (l[i] > l[best]) {
                    best = i;
                }
            }
            return best;
        }
        float[] sorted = l.clone();
        Arrays.sort(sorted);
        float threshold = sorted[Math.max(0, sorted.length - TOP_K)];
        float max = sorted[sorted.length - 1];
        double[] p = new double[l.length];
        double sum = 0;
        for (int i = 0; i < l.length; i++) {
            p[i] = l[i] >= threshold ? Math.exp((l[i] - max) / temperature) : 0;
            sum += p[i];
        }
        double u = random.nextDouble() * sum;
        for (int i = 0; i < l.length; i++) {
            u -= p[i];
            if (u <= 0 && p[i] > 0) {
                return i;
            }
        }
        return argmax(p); // rounding left u just above 0: the likeliest token
    }

    private static int argmax(double[] p) {
        int best = 0;
        for (int i = 1; i < p.length; i++) {
            if (p[i] > p[best]) {
                best = i;
            }
        }
        return best;
    }
}
