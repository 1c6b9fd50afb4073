package dev.moe4j.core.backend;

import dev.moe4j.core.Tensor;

/**
 * Token-choice routing as a backend runs it itself ({@link Backend#routeTopK}), so that a decoding step's expert
 * choices stay where the router's logits are: how the logits become scores, which key ranks the experts, and how the
 * chosen experts' gate weights are made. The moe module's {@code TopKRouter} describes itself as one, and its host
 * code is the definition a backend follows (the same choices, ties to the lower expert index).
 *
 * @param k              experts per token
 * @param sigmoid        sigmoid scores per expert (DeepSeek-V3), else a softmax over the row
 * @param scoreThenTopK  rank the scores (plus the selection bias) and weigh by the scores; else rank the logits
 *                       (plus the selection bias) and weigh by a softmax over the chosen experts' logits
 * @param normalize      divide the chosen experts' scores by their sum (score-then-top-k only)
 * @param scaling        the routed scaling factor every gate weight is multiplied by
 * @param selectionBias  [experts] F32 on the backend's device, added to the ranking key only; or null
 * @param groups         expert groups of which a token keeps its {@code topGroups} best; 0 for no group limit
 * @param topGroups      groups a token may choose from
 * @param scoredPerGroup how many of a group's best keys sum to its score
 */
public record TopKRouting(int k, boolean sigmoid, boolean scoreThenTopK, boolean normalize, float scaling,
                          Tensor selectionBias, int groups, int topGroups, int scoredPerGroup) {
    public TopKRouting {
        if (k < 1 || (groups != 0 && (topGroups < 1 || topGroups > groups || scoredPerGroup < 1))) {
            throw new IllegalArgumentException("top-k routing: k = " + k + ", groups " + groups + " (keep " + topGroups
                    + ", scored by " + scoredPerGroup + ")");
        }
    }
}
