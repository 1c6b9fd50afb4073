package dev.moe4j.model.generate;

import dev.moe4j.core.kernels.TopK;

import java.util.Arrays;
import java.util.BitSet;

/**
 * The steps that shape next-token logits before a token is chosen, each as transformers defines it (its
 * RepetitionPenalty, Temperature, TopK, TopP and MinP logits processors), working in place on one row of logits.
 * A token a step removes gets −∞, so that the later steps and the final softmax ignore it.
 */
public final class LogitsProcessors {
    private LogitsProcessors() {
    }

    /**
     * OpenAI's penalties, as vLLM applies them: each token already chosen in the output loses {@code presence} once
     * and {@code frequency} per time it was chosen ({@code counts}: token id to count).
     */
    public static void presenceAndFrequencyPenalties(float[] logits, java.util.Map<Integer, Integer> counts,
                                                     double presence, double frequency) {
        counts.forEach((id, n) -> logits[id] -= (float) (presence + frequency * n));
    }

    /**
     * CTRL's repetition penalty, once per distinct token in {@code seen}: a positive logit is divided by
     * {@code penalty} and a negative one multiplied, so a penalty above 1 always makes the token less likely.
     */
    public static void repetitionPenalty(float[] logits, BitSet seen, double penalty) {
        float p = (float) penalty;
        for (int id = seen.nextSetBit(0); id >= 0 && id < logits.length; id = seen.nextSetBit(id + 1)) {
            float x = logits[id];
            logits[id] = x < 0 ? x * p : x / p;
        }
    }

    /** Divides every logit by the temperature: below 1 sharpens the distribution, above 1 flattens it. */
    public static void temperature(float[] logits, double temperature) {
        float t = (float) temperature;
        for (int i = 0; i < logits.length; i++) {
            logits[i] /= t;
        }
    }

    /** Removes every logit below the k-th largest; ties with the k-th stay, as in transformers. */
    public static void topK(float[] logits, int k) {
        if (k <= 0 || k >= logits.length) {
            return;
        }
        int[] index = new int[k];
        float[] value = new float[k];
        TopK.row(logits, 0, logits.length, k, index, value, 0);
        float threshold = value[k - 1];
        for (int i = 0; i < logits.length; i++) {
            if (logits[i] < threshold) {
                logits[i] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /**
     * Nucleus filtering: going from the least probable token up, removes tokens while the probability mass
     * removed stays at most 1 − top-p; the most probable token always stays.
     */
    public static void topP(float[] logits, double topP) {
        if (topP >= 1) {
            return;
        }
        int[] order = finiteAscending(logits);
        double[] probs = softmax(logits, order);
        double cumulative = 0;
        for (int r = 0; r < order.length - 1; r++) {
            cumulative += probs[r];
            if (cumulative > 1 - topP) {
                break;
            }
            logits[order[r]] = Float.NEGATIVE_INFINITY;
        }
    }

    /** Removes tokens less probable than min-p times the most probable one (which always stays). */
    public static void minP(float[] logits, double minP) {
        if (minP <= 0) {
            return;
        }
        int[] order = finiteAscending(logits);
        if (order.length == 0) {
            return;
        }
        double[] probs = softmax(logits, order);
        double threshold = minP * probs[order.length - 1];
        for (int r = 0; r < order.length - 1; r++) {
            if (probs[r] < threshold) {
                logits[order[r]] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** The index of the highest logit, the lowest index among equals (as torch.argmax). */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best] || (Float.isNaN(logits[i]) && !Float.isNaN(logits[best]))) {
                best = i;
            }
        }
        return best;
    }

    /**
     * The probabilities softmax(logits) in double precision, over the entries whose logit is finite (the others
     * are 0); the sum is exactly what the caller normalises by, so a draw in [0, 1) always lands on a token.
     */
    public static double[] probabilities(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float x : logits) {
            max = Math.max(max, x);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = logits[i] == Float.NEGATIVE_INFINITY ? 0 : Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    /** Indices of the finite logits, by ascending logit (ties by ascending index). */
    private static int[] finiteAscending(float[] logits) {
        int n = 0;
        long[] keyed = new long[logits.length];
        for (int i = 0; i < logits.length; i++) {
            if (logits[i] != Float.NEGATIVE_INFINITY) {
                // the float's bits made monotonic as a signed int, then the index: one sort orders both
                int bits = Float.floatToIntBits(logits[i]);
                int key = bits >= 0 ? bits : bits ^ 0x7fffffff;
                keyed[n++] = ((long) key << 32) | i;
            }
        }
        Arrays.sort(keyed, 0, n);
        int[] order = new int[n];
        for (int r = 0; r < n; r++) {
            order[r] = (int) keyed[r];
        }
        return order;
    }

    /** softmax over the given entries (in their order), in double precision. */
    private static double[] softmax(float[] logits, int[] order) {
        double[] p = new double[order.length];
        if (order.length == 0) {
            return p;
        }
        double max = logits[order[order.length - 1]];
        double sum = 0;
        for (int r = 0; r < order.length; r++) {
            p[r] = Math.exp(logits[order[r]] - max);
            sum += p[r];
        }
        for (int r = 0; r < order.length; r++) {
            p[r] /= sum;
        }
        return p;
    }
}
