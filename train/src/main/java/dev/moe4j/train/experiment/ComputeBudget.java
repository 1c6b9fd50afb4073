package dev.moe4j.train.experiment;

import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;

/**
 * Forward multiply-adds per token of a model, counted from its config: what "equal compute" means in the
 * experiments. The feed-forward part is what the variants of an experiment hold equal; the rest (attention,
 * LM head) is the same for all of them.
 *
 * <p>Per MoE layer and token: token choice runs k experts (k = experts for the dense router); expert choice runs
 * capacity factor experts on average (each expert takes factor · n / E of the n tokens); Soft MoE runs E · S slots
 * per batch of n tokens, so E · S / n experts per token, plus its router, dispatch and combine products
 * (3 · E · S · d per token). A gated expert of width w costs 3 · d · w, a plain one 2 · d · w; the router E · d.
 *
 * @param expertMacs the experts' share of ffnMacs: routed and shared experts and dense MLPs, no routing
 * @param ffnMacs    feed-forward multiply-adds per token over all layers (experts, shared experts, dense MLPs,
 *                   routers, Soft MoE's dispatch and combine)
 * @param totalMacs  ffnMacs plus attention (projections and scores at the mean causal length) and the LM head
 */
public record ComputeBudget(double expertMacs, double ffnMacs, double totalMacs) {

    /**
     * @param tokensPerForward tokens an MoE layer sees at once in training (batch × context): Soft MoE's slots are
     *                         shared by them, expert choice picks among them
     * @param context          sequence length (attention's cost)
     */
    public static ComputeBudget of(ModelConfig config, int tokensPerForward, int context) {
        long d = config.hiddenSize();
        double experts = 0, ffn = 0, attention = 0;
        for (var spec : config.layers()) {
            if (spec.moe() && config.moe().isPresent()) {
                experts += moeLayer(config.moe().get(), tokensPerForward, false);
                ffn += moeLayer(config.moe().get(), tokensPerForward, true);
            } else {
                experts += 3.0 * d * config.denseIntermediateSize();
                ffn += 3.0 * d * config.denseIntermediateSize();
            }
            attention += attentionLayer(config.attention(), d, context);
        }
        double head = (double) config.vocabSize() * d;
        return new ComputeBudget(experts, ffn, ffn + attention + head);
    }

    /** Multiply-adds per token of one MoE layer; {@code routing} adds the router's and Soft MoE's mixing. */
    static double moeLayer(MoeConfig m, int tokens, boolean routing) {
        double d = m.hidden();
        double expert = (m.ffn().gated() ? 3 : 2) * d * m.intermediate();
        double shared = (m.ffn().gated() ? 3 : 2) * d * m.sharedIntermediate() + (m.sharedGate() ? d : 0);
        double router = routing ? m.experts() * d : 0;
        return shared + switch (m.router()) {
            case TOP_K, DENSE -> router + m.topK() * expert;
            case EXPERT_CHOICE -> router + m.capacity().perExpert(tokens, 1, m.experts()) * (double) m.experts()
                    / tokens * expert;
            case SOFT -> {
                double slots = (double) m.experts() * m.slotsPerExpert();
                yield slots / tokens * expert + (routing ? 3 * slots * d : 0);
            }
        };
    }

    private static double attentionLayer(AttentionConfig attention, long d, int context) {
        return switch (attention) {
            case AttentionConfig.Standard a -> {
                double q = (double) a.numHeads() * a.headDim(), kv = (double) a.numKvHeads() * a.headDim();
                // projections, then scores and the weighted sum over (context + 1) / 2 keys on average
                yield d * q + 2 * d * kv + q * d + 2 * q * (context + 1) / 2.0;
            }
            case AttentionConfig.Latent l ->
                    throw new IllegalArgumentException("compute budgets of latent attention are not counted");
        };
    }
}
