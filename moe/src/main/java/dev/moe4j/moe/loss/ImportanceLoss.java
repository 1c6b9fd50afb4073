package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.Routing;

/**
 * Shazeer et al. 2017's importance loss: CV² of each expert's importance, the sum over the batch of its gate
 * values ({@link Routing#gates()}). It equalises how much weight experts receive, not how many tokens.
 */
public record ImportanceLoss() implements BalanceLoss {
    @Override
    public String name() {
        return "importance";
    }

    @Override
    public double value(Routing r) {
        return CoefficientOfVariation.squared(importance(r));
    }

    @Override
    public void backward(Routing r, float scale, RouterGrads grads) {
        double[] g = CoefficientOfVariation.squaredGradient(importance(r));
        float[] dGates = grads.gates();
        int e = r.experts();
        for (int t = 0; t < r.tokens(); t++) {
            for (int i = 0; i < e; i++) {
                dGates[t * e + i] += (float) (scale * g[i]);
            }
        }
    }

    private static double[] importance(Routing r) {
        int e = r.experts();
        double[] imp = new double[e];
        float[] gates = r.gates();
        for (int t = 0; t < r.tokens(); t++) {
            for (int i = 0; i < e; i++) {
                imp[i] += gates[t * e + i];
            }
        }
        return imp;
    }
}
