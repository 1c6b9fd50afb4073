package dev.moe4j.moe.expert;

import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;

/**
 * The feed-forward network every expert computes: gated, down(glu(gate·x, up·x)) with core's {@link GluParams}
 * (SwiGLU, GeGLU, gpt-oss's clamped variant), or plain, down(act(W·x)) (Switch Transformer's ReLU wi/wo, V-MoE's
 * GELU MLP).
 */
public sealed interface ExpertFfn {
    /**
     * Gate and up projections; when an expert's weights are one fused [2I, H] matrix its rows follow
     * {@code glu.layout()} (moe4j's stacked weights: gate rows then up rows, {@link GluParams.Layout#HALVES}).
     */
    record Gated(GluParams glu) implements ExpertFfn {
    }

    /** One input projection [I, H] and an elementwise activation. */
    record Plain(Activation activation) implements ExpertFfn {
    }

    /** silu(gate) ⊙ up (Mixtral, Qwen, OLMoE, DeepSeek). */
    static ExpertFfn swiglu() {
        return new Gated(GluParams.swiglu());
    }

    /** act(gate) ⊙ up, e.g. GeGLU with a GELU. */
    static ExpertFfn gated(Activation activation) {
        return new Gated(GluParams.gated(activation));
    }

    /** gpt-oss's clamped SwiGLU over moe4j's gate-rows-then-up-rows storage. */
    static ExpertFfn clampedSwiglu(float alpha, float limit) {
        return new Gated(new GluParams.Clamped(alpha, limit, GluParams.Layout.HALVES));
    }

    static ExpertFfn plain(Activation activation) {
        return new Plain(activation);
    }

    default boolean gated() {
        return this instanceof Gated;
    }
}
