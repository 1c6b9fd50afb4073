package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routing;

/**
 * Shazeer et al. 2017's load loss for noisy top-k gating: the number of tokens an expert gets is not
 * differentiable, so it is replaced by its expectation over the noise. Token t reaches expert i when its noisy
 * logit beats a threshold θ, which happens with probability pₜᵢ = Φ((lₜᵢ − θ) / σₜᵢ) (clean logit l, noise scale
 * σ); the loss is CV² of the per-expert sums of p.
 *
 * <p>The threshold has two forms: {@link Threshold#KTH_EXCLUDING_SELF} is the paper's (the k-th largest noisy
 * logit among the other experts: the (k+1)-th overall when i is in the top k, else the k-th);
 * {@link Threshold#KTH_NOISY} is V-MoE's simplification (the k-th largest noisy logit, for every i). Gradients flow
 * into the clean logits, into the noisy logit that sets the threshold and into σ.
 */
public record LoadLoss(Threshold threshold) implements BalanceLoss {
    public enum Threshold { KTH_EXCLUDING_SELF, KTH_NOISY }

    public LoadLoss {
        if (threshold == null) {
            throw new IllegalArgumentException("threshold must be set");
        }
    }

    /**
     * The threshold of the paper whose gating the gate order is: top-k-then-softmax is Shazeer et al.'s noisy top-k
     * gating ({@link Threshold#KTH_EXCLUDING_SELF}); softmax-then-top-k is V-MoE's ({@link Threshold#KTH_NOISY}).
     */
    public static LoadLoss ofPaper(GateOrder order) {
        return new LoadLoss(order == GateOrder.TOP_K_THEN_SOFTMAX ? Threshold.KTH_EXCLUDING_SELF : Threshold.KTH_NOISY);
    }

    @Override
    public String name() {
        return "load";
    }

    @Override
    public double value(Routing r) {
        double[] load = new double[r.experts()];
        forEach(r, (t, i, z, p, sigma, thresholdIndex) -> load[i] += p);
        return CoefficientOfVariation.squared(load);
    }

    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        int e = r.experts();
        double[] load = new double[e];
        forEach(r, (t, i, z, p, sigma, thresholdIndex) -> load[i] += p);
        double[] g = CoefficientOfVariation.squaredGradient(load);
        float[] dLogits = grads.logits(), dNoisy = grads.noisyLogits(), dStd = grads.noiseStd();
        forEach(r, (t, i, z, p, sigma, thresholdIndex) -> {
            // p = Φ((l − θ)/σ): ∂p/∂l = φ/σ, ∂p/∂θ = −φ/σ, ∂p/∂σ = −φ·z/σ.
            double dp = scale * g[i] * NormalDistribution.pdf(z) / sigma;
            dLogits[t * e + i] += (float) dp;
            dNoisy[t * e + thresholdIndex] -= (float) dp;
            dStd[t * e + i] -= (float) (dp * z);
        });
    }

    @FunctionalInterface
    private interface Term {
        void accept(int token, int expert, double z, double p, double sigma, int thresholdIndex);
    }

    private void forEach(Routing r, Term term) {
        int e = r.experts(), k = r.k();
        float[] logits = r.logits(), noisy = r.noisyLogits(), std = r.noiseStd();
        int[] top = new int[k + 1];
        for (int t = 0; t < r.tokens(); t++) {
            RouterMath.topK(noisy, t * e, e, Math.min(k + 1, e), top, 0);
            for (int i = 0; i < e; i++) {
                int index = top[k - 1];
                if (threshold == Threshold.KTH_EXCLUDING_SELF && inTopK(top, k, i)) {
                    index = top[k];
                }
                double sigma = std[t * e + i];
                double z = (logits[t * e + i] - noisy[t * e + index]) / sigma;
                term.accept(t, i, z, NormalDistribution.cdf(z), sigma, index);
            }
        }
    }

    private static boolean inTopK(int[] top, int k, int i) {
        for (int j = 0; j < k; j++) {
            if (top[j] == i) {
                return true;
            }
        }
        return false;
    }
}
