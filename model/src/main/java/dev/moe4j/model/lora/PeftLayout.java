package dev.moe4j.model.lora;

import dev.moe4j.core.Tensor;

import java.util.SplittableRandom;

/**
 * How PEFT lays out and initialises the adapters of fused expert parameters, and how moe4j's per-expert layout
 * (a [E, r, in], b [E, out, r]: W_e + scale · b_e · a_e) maps to it.
 *
 * <p>PEFT's ParamWrapper takes a parameter [E, d1, d2] as E maps from d1 to d2 and gives it lora_A [r·E, d1] and
 * lora_B [d2, r·E]; its update is Δ[e, i, o] = scale · Σ_ρ lora_B[o, ρ·E + e] · lora_A[e·r + ρ, i]. transformers
 * stores fused experts [E, out, in] (gate_up_proj [E, 2I, H], down_proj [E, H, I]) and multiplies x · W_eᵀ, so
 * there d1 is the output: lora_A holds moe4j's b and lora_B moe4j's a. gpt-oss stores them [E, in, out] and
 * multiplies x · W_e: there lora_A is moe4j's a and lora_B its b.
 */
final class PeftLayout {
    private PeftLayout() {
    }

    /** moe4j's (a, b) from PEFT's lora_A [r·E, d1] and lora_B [d2, r·E] of a parameter of {@code experts} experts. */
    static Tensor[] fromPeft(Tensor loraA, Tensor loraB, int experts, boolean transposed) {
        int r = loraA.dim(0) / experts, d1 = loraA.dim(1), d2 = loraB.dim(0);
        int in = transposed ? d1 : d2, out = transposed ? d2 : d1;
        Tensor a = Tensor.zeros(experts, r, in), b = Tensor.zeros(experts, out, r);
        for (int e = 0; e < experts; e++) {
            for (int rho = 0; rho < r; rho++) {
                for (int i = 0; i < d1; i++) {
                    float v = loraA.getFloat((long) (e * r + rho) * d1 + i);
                    if (transposed) {
                        a.set(v, e, rho, i);
                    } else {
                        b.set(v, e, i, rho);
                    }
                }
                for (int o = 0; o < d2; o++) {
                    float v = loraB.getFloat((long) o * r * experts + rho * experts + e);
                    if (transposed) {
                        b.set(v, e, o, rho);
                    } else {
                        a.set(v, e, rho, o);
                    }
                }
            }
        }
        return new Tensor[] {a, b};
    }

    /** PEFT's lora_A [r·E, d1] and lora_B [d2, r·E] from moe4j's a [E, r, in] and b [E, out, r]. */
    static Tensor[] toPeft(Tensor a, Tensor b, boolean transposed) {
        int experts = a.dim(0), r = a.dim(1), in = a.dim(2), out = b.dim(1);
        int d1 = transposed ? in : out, d2 = transposed ? out : in;
        Tensor loraA = Tensor.zeros(r * experts, d1), loraB = Tensor.zeros(d2, r * experts);
        for (int e = 0; e < experts; e++) {
            for (int rho = 0; rho < r; rho++) {
                for (int i = 0; i < d1; i++) {
                    loraA.set(transposed ? a.get(e, rho, i) : b.get(e, i, rho), e * r + rho, i);
                }
                for (int o = 0; o < d2; o++) {
                    loraB.set(transposed ? b.get(e, o, rho) : a.get(e, rho, o), o, rho * experts + e);
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
