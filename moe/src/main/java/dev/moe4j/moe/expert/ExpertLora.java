package dev.moe4j.moe.expert;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;

/**
 * One LoRA adapter per expert on one projection of E experts, stacked: expert e's weight W_e [out, in] acts as
 * W_e + scale · b_e · a_e, with {@code a} [E, r, in] and {@code b} [E, out, r] (a_e and b_e are views
 * {@code select(e)}, and so are their gradients). Only the experts a token reaches compute their adapter.
 */
public record ExpertLora(Parameter a, Parameter b, float scale) {
    public ExpertLora {
        Tensor av = a.value(), bv = b.value();
        if (av.rank() != 3 || bv.rank() != 3 || av.dim(0) != bv.dim(0) || av.dim(1) != bv.dim(2)) {
            throw new IllegalArgumentException("expert adapters are a [E, r, in] and b [E, out, r], got " + av + " and "
                    + bv);
        }
    }

    public int count() {
        return a.value().dim(0);
    }

    public int rank() {
        return a.value().dim(1);
    }

    public int in() {
        return a.value().dim(2);
    }

    public int out() {
        return b.value().dim(1);
    }

    /** a_e [r, in]. */
    Tensor a(int e) {
        return a.value().select(e);
    }

    /** b_e [out, r]. */
    Tensor b(int e) {
        return b.value().select(e);
    }
}
