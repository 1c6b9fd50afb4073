package dev.moe4j.moe;

import dev.moe4j.core.BadInputException;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.BalanceLoss;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.PredictorOptions;
import dev.moe4j.moe.router.Scoring;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Every option of an MoE layer in one immutable record, validated on construction (megablocks' {@code Arguments}
 * in spirit): the router and its gate, capacity and overflow, the experts' network, shared experts and the
 * balance losses. Each family of checkpoints maps its config.json onto it; the trainer builds it from flags.
 *
 * @param hidden               H, the model width
 * @param intermediate         I, each routed expert's hidden width
 * @param experts              E, routed experts
 * @param topK                 k, experts per token (token choice); equals experts for {@link RouterKind#DENSE}
 * @param router               the routing family
 * @param scoring              softmax or sigmoid scores
 * @param gateOrder            score then keep the top k, or keep the top k logits then softmax
 * @param normalizeTopK        renormalise the kept scores to sum 1 (Mixtral, Qwen3, DeepSeek-V3:
 *                             {@code norm_topk_prob}); Qwen2-MoE and OLMoE do not
 * @param routedScalingFactor  multiplies the gate weights (DeepSeek-V3's {@code routed_scaling_factor})
 * @param routerBias           the router linear has a bias (gpt-oss)
 * @param selectionBias        a per-expert bias added to the selection scores only (DeepSeek-V3's
 *                             {@code e_score_correction_bias}; moved by the {@code BiasBalancer})
 * @param groupLimit           group-limited selection ({@code n_group}, {@code topk_group})
 * @param noise                router noise while training
 * @param capacity             tokens per expert (token choice and expert choice)
 * @param overflow             what a choice that finds its expert full does
 * @param priority             the order in which tokens claim slots
 * @param expertChoiceDecode   how expert choice routes at inference
 * @param thresholdMomentum    expert choice: weight of the newest batch in the running thresholds
 * @param predictor            expert choice: a predictor of the experts' selections trained beside the router
 *                             (what {@link ExpertChoiceDecode#PREDICTOR} routes by), or empty
 * @param slotsPerExpert       Soft MoE: slots per expert
 * @param softNormalize        Soft MoE: L2-normalise tokens and slot parameters and learn a scale
 * @param ffn                  the network of every expert
 * @param expertBias           the expert projections have biases (gpt-oss)
 * @param sharedIntermediate   width of the always-on shared expert, 0 for none (DeepSeek: moe_intermediate_size
 *                             × n_shared_experts; Qwen2-MoE: shared_expert_intermediate_size)
 * @param sharedGate           the shared expert's output is scaled by sigmoid(x · w) (Qwen2-MoE)
 * @param losses               balance losses and their coefficients
 * @param seed                 seeds the router noise and the initial weights
 */
public record MoeConfig(int hidden, int intermediate, int experts, int topK, RouterKind router, Scoring scoring,
                        GateOrder gateOrder, boolean normalizeTopK, double routedScalingFactor, boolean routerBias,
                        boolean selectionBias, GroupLimit groupLimit, Noise noise, Capacity capacity,
                        Overflow overflow, Priority priority, ExpertChoiceDecode expertChoiceDecode,
                        double thresholdMomentum, Optional<PredictorOptions> predictor, int slotsPerExpert,
                        boolean softNormalize, ExpertFfn ffn, boolean expertBias, int sharedIntermediate,
                        boolean sharedGate, List<LossTerm> losses, long seed) {

    public MoeConfig {
        losses = List.copyOf(losses);
        validate(hidden, intermediate, experts, topK, router, scoring, gateOrder, routedScalingFactor, selectionBias,
                groupLimit, noise, capacity, overflow, priority, expertChoiceDecode, thresholdMomentum, predictor,
                slotsPerExpert, ffn, sharedIntermediate, sharedGate, losses);
    }

    /** A builder with the defaults of a plain softmax top-k, dropless, SwiGLU layer without losses. */
    public static Builder builder(int hidden, int intermediate, int experts, int topK) {
        return new Builder(hidden, intermediate, experts, topK);
    }

    /** A builder holding this config's values. */
    public Builder toBuilder() {
        var b = new Builder(hidden, intermediate, experts, topK);
        b.router = router;
        b.scoring = scoring;
        b.gateOrder = gateOrder;
        b.normalizeTopK = normalizeTopK;
        b.routedScalingFactor = routedScalingFactor;
        b.routerBias = routerBias;
        b.selectionBias = selectionBias;
        b.groupLimit = groupLimit;
        b.noise = noise;
        b.capacity = capacity;
        b.overflow = overflow;
        b.priority = priority;
        b.expertChoiceDecode = expertChoiceDecode;
        b.thresholdMomentum = thresholdMomentum;
        b.predictor = predictor.orElse(null);
        b.slotsPerExpert = slotsPerExpert;
        b.softNormalize = softNormalize;
        b.ffn = ffn;
        b.expertBias = expertBias;
        b.sharedIntermediate = sharedIntermediate;
        b.sharedGate = sharedGate;
        b.losses = new ArrayList<>(losses);
        b.seed = seed;
        return b;
    }

    /** True for the routers whose tokens pick experts (top-k and dense). */
    public boolean tokenChoice() {
        return router == RouterKind.TOP_K || router == RouterKind.DENSE;
    }

    /**
     * True when inference routes every token by its own router scores (or predictor) alone, so that a sequence fed
     * in pieces (a kept KV cache plus the new tokens, or one token at a time) is routed exactly as one pass over all
     * of it. Not so when tokens of a pass compete for room: a capacity bound (tokens dropped or sent to a later
     * choice, in the priority order, from a capacity that scales with the pass's size), expert choice taking each
     * expert's top-C tokens of the batch, or Soft MoE mixing all tokens into every slot. Inference draws no router
     * noise.
     */
    public boolean routesEachTokenAlone() {
        return switch (router) {
            case TOP_K, DENSE -> capacity.isDropless();
            case EXPERT_CHOICE -> expertChoiceDecode != ExpertChoiceDecode.BATCH_TOP_C;
            case SOFT -> false;
        };
    }

    private static void validate(int hidden, int intermediate, int experts, int topK, RouterKind router,
                                 Scoring scoring, GateOrder gateOrder, double routedScalingFactor,
                                 boolean selectionBias, GroupLimit groupLimit, Noise noise, Capacity capacity,
                                 Overflow overflow, Priority priority, ExpertChoiceDecode decode, double momentum,
                                 Optional<PredictorOptions> predictor, int slotsPerExpert, ExpertFfn ffn,
                                 int sharedIntermediate, boolean sharedGate, List<LossTerm> losses) {
        require(hidden >= 1, "hidden must be >= 1, got " + hidden);
        require(intermediate >= 1, "intermediate must be >= 1, got " + intermediate);
        require(experts >= 1, "experts must be >= 1, got " + experts);
        for (Object field : new Object[] {router, scoring, gateOrder, groupLimit, noise, capacity, overflow,
                priority, decode, predictor, ffn}) {
            require(field != null, "every field must be set (router, scoring, gateOrder, groupLimit, noise, "
                    + "capacity, overflow, priority, expertChoiceDecode, predictor, ffn)");
        }
        boolean tokenChoice = router == RouterKind.TOP_K || router == RouterKind.DENSE;
        if (router == RouterKind.TOP_K) {
            require(topK >= 1 && topK <= experts, "topK must be between 1 and experts (" + experts + "), got " + topK);
        }
        if (router == RouterKind.DENSE) {
            require(topK == experts, "topK must equal experts (" + experts + ") for a dense router, got " + topK);
        }
        require(gateOrder == GateOrder.SOFTMAX_THEN_TOP_K || scoring == Scoring.SOFTMAX,
                "gateOrder TOP_K_THEN_SOFTMAX needs scoring SOFTMAX, got " + scoring);
        require(gateOrder == GateOrder.SOFTMAX_THEN_TOP_K || tokenChoice,
                "gateOrder TOP_K_THEN_SOFTMAX applies to token-choice routers only, not " + router);
        require(routedScalingFactor > 0 && Double.isFinite(routedScalingFactor),
                "routedScalingFactor must be > 0, got " + routedScalingFactor);
        require(!selectionBias || tokenChoice, "selectionBias applies to token-choice routers only, not " + router);
        if (groupLimit.isLimited() || groupLimit.groups() != 1) {
            require(tokenChoice, "groupLimit applies to token-choice routers only, not " + router);
            require(groupLimit.groups() >= 1 && experts % groupLimit.groups() == 0,
                    "groupLimit.groups (" + groupLimit.groups() + ") must divide experts (" + experts + ")");
            int perGroup = experts / groupLimit.groups();
            require(groupLimit.topGroups() >= 1 && groupLimit.topGroups() <= groupLimit.groups(),
                    "groupLimit.topGroups must be between 1 and groups (" + groupLimit.groups() + "), got "
                            + groupLimit.topGroups());
            require(groupLimit.topGroups() * perGroup >= topK, "groupLimit.topGroups × experts per group ("
                    + groupLimit.topGroups() * perGroup + ") must be >= topK (" + topK + ")");
            require(groupLimit.scoredPerGroup() >= 1 && groupLimit.scoredPerGroup() <= perGroup,
                    "groupLimit.scoredPerGroup must be between 1 and experts per group (" + perGroup + ")");
        }
        require(noise.amount() >= 0 && Double.isFinite(noise.amount()), "noise amount must be >= 0, got "
                + noise.amount());
        require(noise.kind() != Noise.Kind.JITTER || noise.amount() < 1,
                "noise jitter must be < 1, got " + noise.amount());
        require(noise.kind() != Noise.Kind.GAUSSIAN || noise.amount() > 0,
                "noise: Gaussian noise needs a standard deviation > 0");
        require(!noise.isGaussian() || tokenChoice, "Gaussian router noise applies to token-choice routers only");
        switch (capacity.kind()) {
            case FIXED -> require(capacity.fixed() >= 1, "capacity must be >= 1 token per expert, got "
                    + capacity.fixed());
            case FACTOR -> require(capacity.factor() > 0 && Double.isFinite(capacity.factor())
                    && capacity.multipleOf() >= 1, "capacity factor must be > 0 and multipleOf >= 1");
            case DROPLESS -> { }
        }
        if (router == RouterKind.EXPERT_CHOICE) {
            require(!capacity.isDropless(), "capacity: expert choice needs a capacity (fixed or factor), not dropless");
            require(momentum > 0 && momentum <= 1, "thresholdMomentum must be in (0, 1], got " + momentum);
            require(decode != ExpertChoiceDecode.PREDICTOR || predictor.isPresent(),
                    "expertChoiceDecode PREDICTOR needs a predictor trained beside the router");
        }
        require(predictor.isEmpty() || router == RouterKind.EXPERT_CHOICE,
                "predictor applies to the expert-choice router only, not " + router);
        predictor.ifPresent(p -> {
            require(p.width() >= 0, "predictor width must be >= 0 (0: a linear probe), got " + p.width());
            require(p.topK() >= 0 && p.topK() <= experts, "predictor topK must be between 0 (probability 0.5) and "
                    + "experts (" + experts + "), got " + p.topK());
            require(p.coefficient() >= 0 && Double.isFinite(p.coefficient()),
                    "predictor coefficient must be >= 0, got " + p.coefficient());
        });
        if (router == RouterKind.SOFT) {
            require(slotsPerExpert >= 1, "slotsPerExpert must be >= 1, got " + slotsPerExpert);
            require(capacity.isDropless(), "capacity: Soft MoE drops nothing; leave capacity dropless");
        }
        require(sharedIntermediate >= 0, "sharedIntermediate must be >= 0, got " + sharedIntermediate);
        require(!sharedGate || sharedIntermediate > 0, "sharedGate needs a shared expert (sharedIntermediate > 0)");
        for (LossTerm term : losses) {
            BalanceLoss loss = term.loss();
            require(term.coefficient() >= 0 && Double.isFinite(term.coefficient()),
                    "losses: coefficient of " + loss.name() + " must be >= 0, got " + term.coefficient());
            require(router != RouterKind.SOFT, "losses: " + loss.name() + " is not defined for Soft MoE");
            switch (loss) {
                case SwitchLoss s -> require(tokenChoice, "losses: switch needs a token-choice router, not " + router);
                case SequenceLoss s -> require(tokenChoice, "losses: sequence needs a token-choice router, not " + router);
                case LoadLoss l -> {
                    require(tokenChoice && noise.isGaussian(),
                            "losses: load needs Gaussian router noise (noise GAUSSIAN or LEARNED_GAUSSIAN)");
                    require(l.threshold() == LoadLoss.Threshold.KTH_NOISY || topK < experts,
                            "losses: load with the paper's threshold needs topK < experts");
                }
                case ImportanceLoss i -> require(i.of() != ImportanceLoss.Of.TOP_K_GATES || tokenChoice,
                        "losses: importance of the top-k gates needs a token-choice router, not " + router);
                case RouterZLoss z -> { }
            }
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new BadInputException("moe config: " + message);
        }
    }

    /** Collects options; {@link #build()} validates them. */
    public static final class Builder {
        private final int hidden;
        private final int intermediate;
        private int experts;
        private int topK;
        private RouterKind router = RouterKind.TOP_K;
        private Scoring scoring = Scoring.SOFTMAX;
        private GateOrder gateOrder = GateOrder.SOFTMAX_THEN_TOP_K;
        private boolean normalizeTopK;
        private double routedScalingFactor = 1;
        private boolean routerBias;
        private boolean selectionBias;
        private GroupLimit groupLimit = GroupLimit.none();
        private Noise noise = Noise.none();
        private Capacity capacity = Capacity.dropless();
        private Overflow overflow = Overflow.DROP;
        private Priority priority = Priority.POSITION;
        private ExpertChoiceDecode expertChoiceDecode = ExpertChoiceDecode.THRESHOLD;
        private double thresholdMomentum = 0.05;
        private PredictorOptions predictor;
        private int slotsPerExpert = 1;
        private boolean softNormalize = true;
        private ExpertFfn ffn = ExpertFfn.swiglu();
        private boolean expertBias;
        private int sharedIntermediate;
        private boolean sharedGate;
        private List<LossTerm> losses = new ArrayList<>();
        private long seed = 1;

        private Builder(int hidden, int intermediate, int experts, int topK) {
            this.hidden = hidden;
            this.intermediate = intermediate;
            this.experts = experts;
            this.topK = topK;
        }

        /** Another number of routed experts (a pruned model's). */
        public Builder experts(int v) {
            experts = v;
            return this;
        }

        /** Another number of experts per token. */
        public Builder topK(int v) {
            topK = v;
            return this;
        }

        public Builder router(RouterKind v) {
            router = v;
            if (v == RouterKind.DENSE) {
                topK = experts;
            }
            return this;
        }

        public Builder scoring(Scoring v) {
            scoring = v;
            return this;
        }

        public Builder gateOrder(GateOrder v) {
            gateOrder = v;
            return this;
        }

        public Builder normalizeTopK(boolean v) {
            normalizeTopK = v;
            return this;
        }

        public Builder routedScalingFactor(double v) {
            routedScalingFactor = v;
            return this;
        }

        public Builder routerBias(boolean v) {
            routerBias = v;
            return this;
        }

        public Builder selectionBias(boolean v) {
            selectionBias = v;
            return this;
        }

        public Builder groupLimit(GroupLimit v) {
            groupLimit = v;
            return this;
        }

        public Builder noise(Noise v) {
            noise = v;
            return this;
        }

        public Builder capacity(Capacity v) {
            capacity = v;
            return this;
        }

        public Builder overflow(Overflow v) {
            overflow = v;
            return this;
        }

        public Builder priority(Priority v) {
            priority = v;
            return this;
        }

        public Builder expertChoiceDecode(ExpertChoiceDecode v) {
            expertChoiceDecode = v;
            return this;
        }

        public Builder thresholdMomentum(double v) {
            thresholdMomentum = v;
            return this;
        }

        /** A predictor trained beside an expert-choice router (null: none). */
        public Builder predictor(PredictorOptions v) {
            predictor = v;
            return this;
        }

        public Builder slotsPerExpert(int v) {
            slotsPerExpert = v;
            return this;
        }

        public Builder softNormalize(boolean v) {
            softNormalize = v;
            return this;
        }

        public Builder ffn(ExpertFfn v) {
            ffn = v;
            return this;
        }

        public Builder expertBias(boolean v) {
            expertBias = v;
            return this;
        }

        public Builder sharedExpert(int intermediateSize, boolean gated) {
            sharedIntermediate = intermediateSize;
            sharedGate = gated;
            return this;
        }

        /** Replaces the balance losses. */
        public Builder losses(List<LossTerm> terms) {
            losses = new ArrayList<>(terms);
            return this;
        }

        /** Adds a balance loss with its coefficient. */
        public Builder loss(BalanceLoss loss, double coefficient) {
            losses.add(new LossTerm(loss, coefficient));
            return this;
        }

        public Builder seed(long v) {
            seed = v;
            return this;
        }

        public MoeConfig build() {
            return new MoeConfig(hidden, intermediate, experts, topK, router, scoring, gateOrder, normalizeTopK,
                    routedScalingFactor, routerBias, selectionBias, groupLimit, noise, capacity, overflow, priority,
                    expertChoiceDecode, thresholdMomentum, Optional.ofNullable(predictor), slotsPerExpert,
                    softNormalize, ffn, expertBias, sharedIntermediate, sharedGate, losses, seed);
        }
    }
}
