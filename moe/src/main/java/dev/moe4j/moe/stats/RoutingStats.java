package dev.moe4j.moe.stats;

import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.router.Routing;

/**
 * What one MoE layer's router did in one forward pass, for logs, reports and the bias balancer.
 *
 * @param tokensPerExpert    assignments each expert served (slots, for Soft MoE)
 * @param droppedFraction    token choice: choices not served / choices made; expert choice: tokens no expert took
 * @param droppedTokens      tokens that no expert processed (the residual alone carries them)
 * @param loadCv             coefficient of variation of tokensPerExpert (population std / mean)
 * @param maxViolation       max over experts of load / mean load − 1 (0 when perfectly balanced)
 * @param routerEntropy      mean over tokens of the entropy (nats) of the router's probabilities
 * @param meanTopProbability mean over tokens of the largest router probability
 * @param predictor          an expert-choice predictor's choices against the batch's selections, when one trained
 *                           in this pass; else null
 */
public record RoutingStats(int tokens, int[] tokensPerExpert, double droppedFraction, int droppedTokens,
                           double loadCv, double maxViolation, double routerEntropy, double meanTopProbability,
                           PredictorConfusion predictor) {

    public int experts() {
        return tokensPerExpert.length;
    }

    /** Measures a routing decision. */
    public static RoutingStats of(Routing r) {
        int e = r.experts(), n = r.tokens();
        int[] load = new int[e];
        int dropped;
        Dispatch d = r.dispatch();
        if (d != null) {
            boolean[] served = new boolean[n];
            for (int i = 0; i < e; i++) {
                load[i] = d.load(i);
            }
            for (int t : d.token()) {
                served[t] = true;
            }
            dropped = 0;
            for (boolean s : served) {
                dropped += s ? 0 : 1;
            }
        } else {
            java.util.Arrays.fill(load, r.soft().slotsPerExpert());
            dropped = 0;
        }
        double mean = 0;
        for (int l : load) {
            mean += l;
        }
        mean /= e;
        double var = 0, max = 0;
        for (int l : load) {
            var += (l - mean) * (l - mean);
            max = Math.max(max, l);
        }
        double cv = mean > 0 ? Math.sqrt(var / e) / mean : 0;
        double violation = mean > 0 ? max / mean - 1 : 0;

        float[] p = r.probabilities();
        double entropy = 0, top = 0;
        for (int t = 0; t < n; t++) {
            double best = 0;
            for (int i = t * e; i < t * e + e; i++) {
                if (p[i] > 0) {
                    entropy -= p[i] * Math.log(p[i]);
                }
                best = Math.max(best, p[i]);
            }
            top += best;
        }
        double droppedFraction = r.requested() > 0 ? (double) r.dropped() / r.requested() : 0;
        return new RoutingStats(n, load, droppedFraction, dropped, cv, violation, entropy / n, top / n,
                r.predictorFit() == null ? null : r.predictorFit().confusion());
    }
}
