package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routing;

/**
 * ST-MoE's router z-loss (Zoph et al. 2022): the mean over tokens of logsumexp(logits)², which keeps router
 * logits small so that the softmax stays in float32's accurate range.
 */
public record RouterZLoss() implements BalanceLoss {
    @Override
    public String name() {
        return "z";
    }

    @Override
    public double value(Routing r) {
        double sum = 0;
        for (float lse : RouterMath.logSumExp(r.logits(), r.tokens(), r.experts())) {
            sum += (double) lse * lse;
        }
        return sum / r.tokens();
    }

    /** d/dlᵢ = 2 · lse · softmax(l)ᵢ / tokens. */
    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        int e = r.experts(), n = r.tokens();
        float[] d = grads.logits();
        float[] lse = RouterMath.logSumExp(r.logits(), n, e), p = RouterMath.softmax(r.logits(), n, e);
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < e; i++) {
                d[t * e + i] += scale * 2f * lse[t] * p[t * e + i] / n;
            }
        }
    }
}
