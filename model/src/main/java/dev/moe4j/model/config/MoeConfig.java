package dev.moe4j.model.config;

/**
 * The mixture-of-experts feed-forward of the MoE layers: {@code numExperts} routed gated-MLP experts of width
 * {@code expertIntermediateSize}, of which each token uses {@code topK}, plus optional shared experts that every
 * token uses.
 *
 * @param numSharedExperts       shared experts (0 for none); they run as one MLP of width
 *                               {@code sharedIntermediateSize}
 * @param sharedIntermediateSize total width of the shared MLP (DeepSeek: n_shared_experts x moe_intermediate_size)
 * @param sharedExpertGate       the shared MLP's output is scaled by sigmoid(x . w) for a learned vector w
 *                               (Qwen2-MoE)
 * @param expertBias             the experts' projections have biases (gpt-oss)
 */
public record MoeConfig(int numExperts, int topK, int expertIntermediateSize, int numSharedExperts,
                        int sharedIntermediateSize, boolean sharedExpertGate, boolean expertBias, RouterConfig router) {
    public MoeConfig {
        if (numExperts <= 0 || topK <= 0 || topK > numExperts) {
            throw new IllegalArgumentException("need 0 < topK (" + topK + ") <= numExperts (" + numExperts + ")");
        }
        if (expertIntermediateSize <= 0) {
            throw new IllegalArgumentException("expertIntermediateSize must be positive, got "
                    + expertIntermediateSize);
        }
        if (numSharedExperts < 0 || (numSharedExperts > 0) != (sharedIntermediateSize > 0)) {
            throw new IllegalArgumentException("shared experts (" + numSharedExperts + ") and their width ("
                    + sharedIntermediateSize + ") must both be zero or both positive");
        }
        if (sharedExpertGate && numSharedExperts == 0) {
            throw new IllegalArgumentException("a shared expert gate needs a shared expert");
        }
        if (numExperts % router.numGroups() != 0) {
            throw new IllegalArgumentException(numExperts + " experts do not split into " + router.numGroups()
                    + " groups");
        }
        if (router.numGroups() > 1 && topK > router.topKGroups() * (numExperts / router.numGroups())) {
            throw new IllegalArgumentException("top-" + topK + " cannot be chosen from " + router.topKGroups()
                    + " groups of " + numExperts / router.numGroups() + " experts");
        }
    }

    public boolean hasSharedExperts() {
        return numSharedExperts > 0;
    }
}
