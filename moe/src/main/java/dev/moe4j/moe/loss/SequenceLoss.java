package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routing;

/**
 * DeepSeek-V3's complementary sequence-wise balance loss: for each sequence of length L,
 * Σᵢ fᵢ · Pᵢ with fᵢ = N / (k · L) · (tokens of the sequence choosing i) and Pᵢ = (1/L) Σₜ s'ᵢ,ₜ, the router's
 * normalised scores ({@link Routing#probabilities()}); the loss is the mean over the batch's sequences. It
 * balances every sequence, not only the batch, at a small coefficient beside aux-loss-free balancing.
 */
public record SequenceLoss() implements BalanceLoss {
    @Override
    public String name() {
        return "sequence";
    }

    @Override
    public double value(Routing r) {
        int e = r.experts(), len = r.sequenceLength(), sequences = r.tokens() / len;
        float[] p = r.probabilities();
        double total = 0;
        for (int s = 0; s < sequences; s++) {
            double[] f = fractions(r, s);
            for (int i = 0; i < e; i++) {
                double mean = 0;
                for (int t = s * len; t < (s + 1) * len; t++) {
                    mean += p[t * e + i];
                }
                total += f[i] * mean / len;
            }
        }
        return total / sequences;
    }

    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        int e = r.experts(), n = r.tokens(), len = r.sequenceLength(), sequences = n / len;
        float[] dp = new float[n * e];
        for (int s = 0; s < sequences; s++) {
            double[] f = fractions(r, s);
            for (int t = s * len; t < (s + 1) * len; t++) {
                for (int i = 0; i < e; i++) {
                    dp[t * e + i] = (float) (scale * f[i] / len / sequences);
                }
            }
        }
        RouterMath.probabilitiesBackward(r.scoring(), r.logits(), r.probabilities(), dp, n, e, grads.logits());
    }

    private static double[] fractions(Routing r, int sequence) {
        int e = r.experts(), k = r.k(), len = r.sequenceLength();
        double[] f = new double[e];
        int[] choices = r.choices();
        for (int t = sequence * len; t < (sequence + 1) * len; t++) {
            for (int j = 0; j < k; j++) {
                f[choices[t * k + j]] += (double) e / ((double) k * len);
            }
        }
        return f;
    }
}
