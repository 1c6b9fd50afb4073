package dev.moe4j.moe.router;

/**
 * Noise a token-choice router adds while training (never at inference):
 * <ul>
 *   <li>{@link Kind#JITTER}: the router input is multiplied by uniform noise in [1 − amount, 1 + amount]
 *       (Switch Transformer);</li>
 *   <li>{@link Kind#GAUSSIAN}: logits + N(0, 1) · amount, a fixed standard deviation (V-MoE uses 1/experts);</li>
 *   <li>{@link Kind#LEARNED_GAUSSIAN}: logits + N(0, 1) · softplus(x · W_noise), with W_noise trained (Shazeer et
 *       al. 2017, noisy top-k gating).</li>
 * </ul>
 */
public record Noise(Kind kind, double amount) {
    public enum Kind { NONE, JITTER, GAUSSIAN, LEARNED_GAUSSIAN }

    public static Noise none() {
        return new Noise(Kind.NONE, 0);
    }

    public static Noise jitter(double epsilon) {
        return new Noise(Kind.JITTER, epsilon);
    }

    public static Noise gaussian(double std) {
        return new Noise(Kind.GAUSSIAN, std);
    }

    public static Noise learnedGaussian() {
        return new Noise(Kind.LEARNED_GAUSSIAN, 0);
    }

    /** True for the kinds that add noise to the logits (and so feed the load loss). */
    public boolean isGaussian() {
        return kind == Kind.GAUSSIAN || kind == Kind.LEARNED_GAUSSIAN;
    }
}
