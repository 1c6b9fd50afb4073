package dev.moe4j.model.generate;

import dev.moe4j.core.kernels.TopK;

/**
 * The log-probability the model gave a generated token, and its most likely alternatives: the log-softmax of the
 * model's own logits at that step, before any penalty, temperature or truncation (vLLM's default, "raw" logprobs).
 *
 * @param id          the token chosen
 * @param logprob     its log-probability
 * @param topIds      the most likely tokens, most likely first (as many as asked for)
 * @param topLogprobs their log-probabilities
 */
public record TokenLogprob(int id, float logprob, int[] topIds, float[] topLogprobs) {
    /** The log-softmax of {@code logits} at {@code id}, with the {@code top} most likely tokens. */
    static TokenLogprob of(float[] logits, int id, int top) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (float v : logits) {
            sum += Math.exp(v - max);
        }
        float logZ = (float) (max + Math.log(sum));
        int[] ids = new int[Math.min(top, logits.length)];
        float[] values = new float[ids.length];
        // the router's selection: the best few, largest first, ties to the lower id
        TopK.row(logits, 0, logits.length, ids.length, ids, values, 0);
        for (int i = 0; i < ids.length; i++) {
            values[i] -= logZ;
        }
        return new TokenLogprob(id, logits[id] - logZ, ids, values);
    }
}
