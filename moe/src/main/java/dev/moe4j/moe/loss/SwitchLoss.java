package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routing;

/**
 * The Switch Transformer load-balancing loss N · Σᵢ fᵢ · Pᵢ (Fedus et al. 2021): fᵢ is the fraction of the batch
 * routed to expert i (from the choices before capacity, a constant), Pᵢ the mean router probability of expert i
 * (differentiable). With uniform routing it equals 1 for the paper's form.
 *
 * <p>For k > 1 two forms are in use: {@link Form#PAPER} counts assignments, fᵢ = (choices of i) / (tokens · k),
 * so Σ fᵢ = 1; {@link Form#TRANSFORMERS} is what Hugging Face's {@code load_balancing_loss_func} computes,
 * fᵢ = (tokens choosing i) / tokens, so Σ fᵢ = k and the loss is k times the paper's. For k = 1 they agree.
 */
public record SwitchLoss(Form form) implements BalanceLoss {
    public enum Form { PAPER, TRANSFORMERS }

    public SwitchLoss {
        if (form == null) {
            throw new IllegalArgumentException("form must be set");
        }
    }

    @Override
    public String name() {
        return "switch";
    }

    @Override
    public double value(Routing r) {
        double[] f = fractions(r);
        float[] p = r.probabilities();
        int e = r.experts(), n = r.tokens();
        double loss = 0;
        for (int i = 0; i < e; i++) {
            double mean = 0;
            for (int t = 0; t < n; t++) {
                mean += p[t * e + i];
            }
            loss += f[i] * mean / n;
        }
        return e * loss;
    }

    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        double[] f = fractions(r);
        int e = r.experts(), n = r.tokens();
        float[] dp = new float[n * e];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < e; i++) {
                dp[t * e + i] = (float) (scale * e * f[i] / n);
            }
        }
        RouterMath.probabilitiesBackward(r.scoring(), r.logits(), r.probabilities(), dp, n, e, grads.logits());
    }

    private double[] fractions(Routing r) {
        int e = r.experts(), k = r.k();
        double[] f = new double[e];
        int[] choices = r.choices();
        for (int c : choices) {
            f[c] += 1;
        }
        double denominator = form == Form.PAPER ? (double) r.tokens() * k : r.tokens();
        for (int i = 0; i < e; i++) {
            f[i] /= denominator;
        }
        return f;
    }
}
