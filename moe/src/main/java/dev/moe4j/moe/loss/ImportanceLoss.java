package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routing;

/**
 * The importance loss: CV² of each expert's importance, the sum over the batch of what the router gives it. It
 * equalises how much weight experts receive, not how many tokens. The papers that define it sum different values
 * once the router adds noise while training, so {@link Of} names each definition.
 *
 * @param of which per-token values an expert's importance sums
 */
public record ImportanceLoss(Of of) implements BalanceLoss {
    /** What an expert's importance is the batch sum of. */
    public enum Of {
        /**
         * V-MoE (Riquelme et al. 2021, Appendix A.2, and google-research/vmoe): the softmax of the clean logits,
         * before any noise. For sigmoid scores: the scores normalised to sum 1 per token (the router's
         * probabilities, as in the Switch loss).
         */
        CLEAN_SOFTMAX,
        /**
         * The softmax (or normalised sigmoid) of the noisy logits the router selected with; the clean softmax when
         * no noise was drawn. No paper's definition: what moe4j computed before the two above were told apart.
         */
        NOISY_SOFTMAX,
        /**
         * Shazeer et al. 2017: Importance(X) = Σₓ G(x), with G(x) = Softmax(KeepTopK(H(x), k)) the gates of the
         * noisy top-k gating: each token's gate weights on its kept experts (before capacity, routed scaling
         * included), zero elsewhere. Gradients reach only the kept experts, as in the paper.
         */
        TOP_K_GATES
    }

    public ImportanceLoss {
        if (of == null) {
            throw new IllegalArgumentException("of must be set");
        }
    }

    /**
     * The definition of the paper whose gating the gate order is: top-k-then-softmax is Shazeer et al.'s noisy
     * top-k gating ({@link Of#TOP_K_GATES}); softmax-then-top-k is V-MoE's ({@link Of#CLEAN_SOFTMAX}).
     */
    public static ImportanceLoss ofPaper(GateOrder order) {
        return new ImportanceLoss(order == GateOrder.TOP_K_THEN_SOFTMAX ? Of.TOP_K_GATES : Of.CLEAN_SOFTMAX);
    }

    @Override
    public String name() {
        return "importance";
    }

    @Override
    public double value(Routing r) {
        return CoefficientOfVariation.squared(importance(values(r), r.tokens(), r.experts()));
    }

    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        int n = r.tokens(), e = r.experts();
        float[] values = values(r);
        double[] g = CoefficientOfVariation.squaredGradient(importance(values, n, e));
        float[] d = new float[n * e];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < e; i++) {
                d[t * e + i] = (float) (scale * g[i]);
            }
        }
        switch (of) {
            case CLEAN_SOFTMAX -> RouterMath.probabilitiesBackward(r.scoring(), r.logits(), values, d, n, e,
                    grads.logits());
            case NOISY_SOFTMAX -> {
                boolean noisy = r.noisyLogits() != null;
                RouterMath.probabilitiesBackward(r.scoring(), noisy ? r.noisyLogits() : r.logits(), values, d, n, e,
                        noisy ? grads.noisyLogits() : grads.logits());
            }
            case TOP_K_GATES -> {
                // The kept gates are the combine weights before capacity: their gradient is the combine step's.
                // A gate of exactly 0 carries no gradient to the logits through either gate order, so the kept
                // set is where the gates are non-zero.
                float[] dWeights = grads.weights();
                for (int i = 0; i < d.length; i++) {
                    if (values[i] != 0f) {
                        dWeights[i] += d[i];
                    }
                }
            }
        }
    }

    private float[] values(Routing r) {
        return switch (of) {
            case CLEAN_SOFTMAX -> r.probabilities();
            case NOISY_SOFTMAX -> r.noisyLogits() == null ? r.probabilities()
                    : RouterMath.probabilities(r.scoring(), r.noisyLogits(), r.tokens(), r.experts());
            case TOP_K_GATES -> r.topKGates();
        };
    }

    private static double[] importance(float[] values, int tokens, int experts) {
        double[] imp = new double[experts];
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < experts; i++) {
                imp[i] += values[t * experts + i];
            }
        }
        return imp;
    }
}
