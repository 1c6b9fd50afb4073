package dev.moe4j.train;

import dev.moe4j.moe.stats.PredictorConfusion;

import java.util.List;

/**
 * What one optimiser step did: the losses (means over its micro-batches), the learning rate, the gradient norm
 * before clipping, the tokens it consumed and how fast, and what every MoE layer's router did.
 *
 * @param step         steps done after this one (1 for the first)
 * @param loss         cross-entropy plus the weighted auxiliary losses
 * @param crossEntropy mean next-token cross-entropy (nats)
 * @param auxiliary    Σ coefficient · auxiliary loss
 * @param gradNorm     global L2 norm of the gradients before clipping
 * @param seconds      wall-clock time of the step
 */
public record StepMetrics(long step, double loss, double crossEntropy, double auxiliary, double lr, double gradNorm,
                          long tokens, double seconds, List<LayerRouting> routing) {
    public StepMetrics {
        routing = List.copyOf(routing);
    }

    public double tokensPerSecond() {
        return seconds > 0 ? tokens / seconds : 0;
    }

    /**
     * One MoE layer's routing over the step's micro-batches.
     *
     * @param tokensPerExpert assignments each expert served, summed over the micro-batches
     * @param loadCv          coefficient of variation of tokensPerExpert
     * @param dropped         mean fraction of choices not served (capacity)
     * @param maxViolation    max load / mean load − 1
     * @param entropy         mean router entropy (nats)
     * @param predictor       an expert-choice predictor's choices against the batches' selections, summed over the
     *                        micro-batches; null without a predictor
     */
    public record LayerRouting(int layer, int[] tokensPerExpert, double loadCv, double dropped, double maxViolation,
                               double entropy, PredictorConfusion predictor) {
    }

    /** Mean over the MoE layers of the load CV (0 without MoE layers). */
    public double meanLoadCv() {
        return routing.stream().mapToDouble(LayerRouting::loadCv).average().orElse(0);
    }

    /** Mean over the MoE layers of the dropped fraction. */
    public double meanDropped() {
        return routing.stream().mapToDouble(LayerRouting::dropped).average().orElse(0);
    }
}
