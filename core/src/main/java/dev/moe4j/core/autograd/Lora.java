package dev.moe4j.core.autograd;

/**
 * A low-rank adapter on one linear map (Hu et al., LoRA, 2021): the frozen weight W [out, in] acts as
 * W + scale · b · a, with {@code a} [r, in] taking the input down to rank r and {@code b} [out, r] taking it back
 * up. {@code scale} is lora_alpha / r (or lora_alpha / √r for rank-stabilised LoRA). The product b · a is never
 * formed: {@link Graph#linear(Var, Var, Var, Lora)} adds scale · (x · aᵀ) · bᵀ to x · Wᵀ.
 */
public record Lora(Var a, Var b, float scale) {
    public Lora {
        if (a.value().rank() != 2 || b.value().rank() != 2 || a.value().dim(0) != b.value().dim(1)) {
            throw new IllegalArgumentException("LoRA needs a [r, in] and b [out, r], got " + a.value() + " and "
                    + b.value());
        }
    }

    /** r, the adapter's rank. */
    public int rank() {
        return a.value().dim(0);
    }
}
