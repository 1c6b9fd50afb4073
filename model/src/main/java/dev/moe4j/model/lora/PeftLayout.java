package dev.moe4j.model.lora;

import dev.moe4j.core.Tensor;

import java.util.SplittableRandom;

/**
 * How PEFT lays out and initialises the adapters of fused expert parameters, and how moe4j's per-expert layout
 * (a [E, r, in], b [E, out, r]: W_e + scale · b_e · a_e) maps to it.
 *
 * <p>PEFT's ParamWrapper gives a parameter of E experts lora_A [r·E, in] (expert e's rows e·r .. e·r + r − 1) and
 * lora_B [out, r·E] (expert e's columns e, E + e, 2E + e, ...), so expert e's update is
 * scale · lora_B[:, ρ·E + e] · lora_A[e·r + ρ, :] summed over ρ: lora_A is moe4j's a, lora_B its b. Which of the
 * parameter's dimensions is the input changed in PEFT 0.19.1: since then PEFT reads transformers' [E, out, in]
 * (gate_up_proj [E, 2I, H], down_proj [E, H, I]) as [E, out, in] and gpt-oss's [E, in, out] (is_transposed) as such;
 * before, it read every 3-D parameter as [E, in = d1, out = d2], so for [E, out, in] storage lora_A spanned the
 * output and lora_B the input (moe4j's b and a), and the update was the transpose. Both are read; moe4j writes the
 * current layout.
 */
final class PeftLayout {
    private PeftLayout() {
    }

    /**
     * moe4j's (a, b) from PEFT's lora_A [r·E, d1] and lora_B [d2, r·E] of a parameter of {@code experts} experts,
     * lora_A spanning the input ({@code aIsInput}: PEFT 0.19.1 and later, and gpt-oss's transposed experts always) or
     * the output (older PEFT on [E, out, in] parameters).
     */
    static Tensor[] fromPeft(Tensor loraA, Tensor loraB, int experts, boolean aIsInput) {
        int r = loraA.dim(0) / experts, d1 = loraA.dim(1), d2 = loraB.dim(0);
        int in = aIsInput ? d1 : d2, out = aIsInput ? d2 : d1;
        Tensor a = Tensor.zeros(experts, r, in), b = Tensor.zeros(experts, out, r);
        for (int e = 0; e < experts; e++) {
            for (int rho = 0; rho < r; rho++) {
                for (int i = 0; i < d1; i++) {
                    float v = loraA.getFloat((long) (e * r + rho) * d1 + i);
                    if (aIsInput) {
                        a.set(v, e, rho, i);
                    } else {
                        b.set(v, e, i, rho);
                    }
                }
                for (int o = 0; o < d2; o++) {
                    float v = loraB.getFloat((long) o * r * experts + rho * experts + e);
                    if (aIsInput) {
                        b.set(v, e, o, rho);
                    } else {
                        a.set(v, e, rho, o);
                    }
                }
            }
        }
        return new Tensor[] {a, b};
    }

    /** PEFT's lora_A [r·E, in] and lora_B [out, r·E] (PEFT 0.19.1's layout) from moe4j's a [E, r, in] and b [E, out, r]. */
    static Tensor[] toPeft(Tensor a, Tensor b) {
        int experts = a.dim(0), r = a.dim(1), in = a.dim(2), out = b.dim(1);
        Tensor loraA = Tensor.zeros(r * experts, in), loraB = Tensor.zeros(out, r * experts);
        for (int e = 0; e < experts; e++) {
            for (int rho = 0; rho < r; rho++) {
                for (int i = 0; i < in; i++) {
                    loraA.set(a.get(e, rho, i), e * r + rho, i);
                }
                for (int o = 0; o < out; o++) {
                    loraB.set(b.get(e, o, rho), o, rho * experts + e);
                }
            }
        }
        return new Tensor[] {loraA, loraB};
    }

    /**
     * Fills {@code t} as PEFT's default initialisation fills lora_A (torch's kaiming_uniform_ with a = √5, the
     * nn.Linear default): uniform on ±1/√fanIn, fanIn being lora_A's input width.
     */
    static void kaimingUniform(Tensor t, int fanIn, SplittableRandom random) {
        double bound = 1 / Math.sqrt(fanIn);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) ((2 * random.nextDouble() - 1) * bound));
        }
    }
}
