package dev.moe4j.moe.expert;

/**
 * The feed-forward network every expert computes. Gated kinds have gate and up projections and compute
 * down(act(gate·x) ⊙ up·x); plain kinds have one input projection and compute down(act(W·x)).
 *
 * @param alpha for {@link Kind#CLAMPED_SWIGLU}: the sigmoid's sharpness (gpt-oss: 1.702)
 * @param limit for {@link Kind#CLAMPED_SWIGLU}: gate clamped above, up clamped to ±limit (gpt-oss: 7)
 */
public record ExpertFfn(Kind kind, float alpha, float limit) {
    public enum Kind {
        /** silu(gate) ⊙ up (Mixtral, Qwen, OLMoE, DeepSeek). */
        SWIGLU,
        /** gelu(gate) ⊙ up. */
        GEGLU,
        /** gpt-oss: g = min(gate, limit), u = clamp(up, ±limit), g·σ(alpha·g) ⊙ (u + 1). */
        CLAMPED_SWIGLU,
        /** gelu(W·x) (ViT-style experts, V-MoE). */
        GELU,
        /** relu(W·x) (Switch Transformer's wi/wo). */
        RELU
    }

    public static ExpertFfn swiglu() {
        return new ExpertFfn(Kind.SWIGLU, 1f, Float.POSITIVE_INFINITY);
    }

    public static ExpertFfn geglu() {
        return new ExpertFfn(Kind.GEGLU, 1f, Float.POSITIVE_INFINITY);
    }

    /** gpt-oss's clamped SwiGLU. */
    public static ExpertFfn clampedSwiglu(float alpha, float limit) {
        return new ExpertFfn(Kind.CLAMPED_SWIGLU, alpha, limit);
    }

    public static ExpertFfn gelu() {
        return new ExpertFfn(Kind.GELU, 1f, Float.POSITIVE_INFINITY);
    }

    public static ExpertFfn relu() {
        return new ExpertFfn(Kind.RELU, 1f, Float.POSITIVE_INFINITY);
    }

    /** True when the network has separate gate and up projections. */
    public boolean gated() {
        return kind == Kind.SWIGLU || kind == Kind.GEGLU || kind == Kind.CLAMPED_SWIGLU;
    }
}
