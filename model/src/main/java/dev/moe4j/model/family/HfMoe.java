package dev.moe4j.model.family;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.BalanceLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;

/**
 * How the families express their MoE layers with the moe module's {@link MoeConfig}, and what a config.json can
 * say back: every family routes token choice, dropless, and trains with transformers' load-balancing loss
 * (DeepSeek with its sequence-wise loss) at the config's coefficient.
 */
final class HfMoe {
    private HfMoe() {
    }

    /** transformers' load_balancing_loss_func is the Switch loss with fᵢ counting tokens (Σ f = k). */
    static final SwitchLoss TRANSFORMERS_BALANCE_LOSS = new SwitchLoss(SwitchLoss.Form.TRANSFORMERS);

    /**
     * Softmax over all experts, then the top k (Mixtral, Qwen, OLMoE), with the experts computing
     * {@code down(act(gate·x) ⊙ up·x)}; the balance loss enters training with {@code auxLossCoef} (none at 0).
     */
    static MoeConfig.Builder softmaxTopK(int hidden, int intermediate, int experts, int topK, boolean renormalize,
                                         Activation activation, double auxLossCoef) {
        var b = MoeConfig.builder(hidden, intermediate, experts, topK).normalizeTopK(renormalize)
                .ffn(ExpertFfn.gated(activation));
        if (auxLossCoef > 0) {
            b.loss(TRANSFORMERS_BALANCE_LOSS, auxLossCoef);
        }
        return b;
    }

    /** Builds the config, naming the file when the fields do not fit together (e.g. top-k beyond the experts). */
    static MoeConfig build(ConfigFields c, MoeConfig.Builder builder) {
        try {
            return builder.build();
        } catch (BadInputException e) {
            throw new BadInputException(c.source() + ": inconsistent config: " + e.getMessage(), e);
        }
    }

    /** The coefficient of the given balance loss, 0 when the config trains without it. */
    static double coefficient(MoeConfig moe, BalanceLoss loss) {
        return moe.losses().stream().filter(t -> t.loss().equals(loss)).mapToDouble(LossTerm::coefficient).sum();
    }

    /**
     * Refuses what no supported config.json can express: routers other than token-choice top-k, capacity limits,
     * noise other than the jitter Mixtral knows, and losses other than {@code allowedLoss}.
     */
    static void requireHfRouting(MoeConfig moe, String family, boolean jitter, BalanceLoss allowedLoss) {
        HfCommon.require(moe.router() == RouterKind.TOP_K, family, "a " + moe.router() + " router (token-choice top-k only)");
        HfCommon.require(moe.capacity().isDropless(), family, "an expert capacity (its models are dropless)");
        HfCommon.require(moe.noise().kind() == Noise.Kind.NONE || (jitter && moe.noise().kind() == Noise.Kind.JITTER),
                family, "router noise " + moe.noise().kind());
        HfCommon.require(moe.losses().stream().allMatch(t -> t.loss().equals(allowedLoss)), family,
                "balance losses other than " + allowedLoss.name());
    }

    /** Refuses anything but softmax scores, top-k after scoring, no biases, no groups and no scaling. */
    static void requirePlainSoftmax(MoeConfig moe, String family) {
        HfCommon.require(moe.scoring() == Scoring.SOFTMAX && moe.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K
                && !moe.routerBias() && !moe.selectionBias() && !moe.groupLimit().isLimited()
                && moe.routedScalingFactor() == 1.0, family, "a router other than softmax then top-k");
    }

    /** The experts' activation, which these families take from hidden_act: it must be a plain gated unit. */
    static Activation gatedActivation(MoeConfig moe, String family) {
        if (moe.ffn() instanceof ExpertFfn.Gated(GluParams.Gated g) && g.layout() == GluParams.Layout.HALVES) {
            return g.activation();
        }
        throw HfCommon.cannot(family, "experts computing " + moe.ffn());
    }
}
