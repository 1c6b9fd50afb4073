package dev.moe4j.model.config;

/**
 * How a token chooses its experts.
 *
 * @param scoring             softmax over the experts, or an independent sigmoid per expert
 * @param order               score every expert and keep the top k, or keep the top-k logits and softmax only those
 * @param renormalize         rescale the kept weights to sum to one
 * @param selectionBias       a per-expert bias added to the scores only to choose experts, not to weight them
 *                            (DeepSeek-V3's auxiliary-loss-free balancing, {@code e_score_correction_bias})
 * @param numGroups           experts are split into this many groups (1: no grouping) ...
 * @param topKGroups          ... and a token may only choose experts from its best {@code topKGroups} groups, a group
 *                            scoring the sum of its two best experts (DeepSeek-V3)
 * @param routedScalingFactor multiplies the routed experts' weights after normalisation
 * @param bias                the router projection has a bias (gpt-oss)
 * @param jitterNoise         multiplicative uniform noise on the router input while training (Mixtral), 0 for none
 * @param auxLossCoef         weight of the load-balancing loss in the training loss
 */
public record RouterConfig(Scoring scoring, Order order, boolean renormalize, boolean selectionBias, int numGroups,
                           int topKGroups, double routedScalingFactor, boolean bias, double jitterNoise,
                           double auxLossCoef) {
    public RouterConfig {
        if (numGroups < 1 || topKGroups < 1 || topKGroups > numGroups) {
            throw new IllegalArgumentException("router groups: need 1 <= topKGroups (" + topKGroups
                    + ") <= numGroups (" + numGroups + ")");
        }
        if (order == Order.TOP_K_THEN_SCORE && scoring != Scoring.SOFTMAX) {
            throw new IllegalArgumentException("top-k-then-score routing is defined for softmax scoring only");
        }
    }

    /** Softmax over all experts, top-k, optionally renormalised: Mixtral, Qwen, OLMoE. */
    public static RouterConfig softmaxTopK(boolean renormalize, double auxLossCoef) {
        return new RouterConfig(Scoring.SOFTMAX, Order.SCORE_THEN_TOP_K, renormalize, false, 1, 1, 1.0, false, 0.0,
                auxLossCoef);
    }

    public enum Scoring { SOFTMAX, SIGMOID }

    public enum Order {
        /** Score all experts (softmax or sigmoid), then keep the k best. */
        SCORE_THEN_TOP_K,
        /** Keep the k largest logits, then softmax over those k only (gpt-oss); the weights sum to one. */
        TOP_K_THEN_SCORE
    }
}
