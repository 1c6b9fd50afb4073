package dev.moe4j.moe.testing;

import dev.moe4j.core.testing.Reference;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.loss.BalanceLoss;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.Scoring;

import java.util.Map;

/**
 * A naive float64 version of every router's continuous math and of every balance loss, written from the papers'
 * formulas, with the discrete decisions (choices, served pairs, noise sample, jitter) taken from a float32
 * {@link Routing} and held fixed: the reference the float32 forward is checked against and whose central finite
 * differences check the float32 backward.
 */
public final class ReferenceRouting {
    /** The decisions of one float32 forward pass, held fixed under perturbation. */
    public record Decisions(int tokens, int[] choices, int[][] weightSets, int[] servedToken, int[] servedExpert,
                            float[] noise, float[] jitter, int[][] thresholdOrder, int sequenceLength) {
        public static Decisions of(MoeConfig c, Routing r) {
            int n = r.tokens(), k = c.topK(), e = c.experts();
            Dispatch d = r.dispatch();
            int[] servedToken = d == null ? null : d.token().clone();
            int[] servedExpert = d == null ? null : d.expertOfRows();
            int[][] sets = null;
            if (c.tokenChoice()) {
                sets = new int[n][];
                for (int t = 0; t < n; t++) {
                    if (c.overflow() == Overflow.DROP) {
                        sets[t] = java.util.Arrays.copyOfRange(r.choices(), t * k, t * k + k);
                    } else {
                        int tt = t;
                        sets[t] = java.util.stream.IntStream.range(0, servedToken.length)
                                .filter(i -> servedToken[i] == tt).map(i -> servedExpert[i]).toArray();
                    }
                }
            }
            int[][] order = null;
            if (r.noisyLogits() != null) {
                order = new int[n][];
                for (int t = 0; t < n; t++) {
                    int tt = t;
                    order[t] = java.util.stream.IntStream.range(0, e).boxed()
                            .sorted((a, b) -> Float.compare(r.noisyLogits()[tt * e + b], r.noisyLogits()[tt * e + a]))
                            .mapToInt(Integer::intValue).toArray();
                }
            }
            return new Decisions(n, r.choices() == null ? null : r.choices().clone(), sets, servedToken, servedExpert,
                    r.noise() == null ? null : r.noise().clone(), r.jitter() == null ? null : r.jitter().clone(),
                    order, r.sequenceLength());
        }
    }

    /** Everything continuous a router outputs, in float64. */
    public record Output(double[] logits, double[] selection, double[] std, double[] gates, double[] weights,
                         double[] dispatch, double[] combine) {
    }

    private final MoeConfig c;

    public ReferenceRouting(MoeConfig c) {
        this.c = c;
    }

    /**
     * Routes x [tokens, hidden] with parameters named as the router names them ({@code router.weight}, ...).
     * {@code weights} is [tokens, experts], zero where nothing was served.
     */
    public Output route(double[] x, Map<String, double[]> p, Decisions d) {
        int n = d.tokens(), h = c.hidden(), e = c.experts();
        if (c.router() == RouterKind.SOFT) {
            return soft(x, p, n);
        }
        double[] input = x;
        if (d.jitter() != null) {
            input = x.clone();
            for (int i = 0; i < input.length; i++) {
                input[i] *= d.jitter()[i];
            }
        }
        double[] logits = linear(input, p.get("router.weight"), p.get("router.bias"), n, h, e);
        double[] selection = logits, std = null;
        if (d.noise() != null) {
            std = new double[n * e];
            if (c.noise().kind() == Noise.Kind.LEARNED_GAUSSIAN) {
                double[] z = linear(x, p.get("router.noise_weight"), null, n, h, e);
                for (int i = 0; i < std.length; i++) {
                    std[i] = Math.log1p(Math.exp(z[i]));
                }
            } else {
                java.util.Arrays.fill(std, c.noise().amount());
            }
            selection = new double[n * e];
            for (int i = 0; i < selection.length; i++) {
                selection[i] = logits[i] + d.noise()[i] * std[i];
            }
        }
        double[] gates = new double[n * e], weights = new double[n * e];
        double scale = c.routedScalingFactor();
        if (c.router() == RouterKind.EXPERT_CHOICE) {
            gates = scores(c.scoring(), logits, n, e);
            for (int i = 0; i < d.servedToken().length; i++) {
                int at = d.servedToken()[i] * e + d.servedExpert()[i];
                weights[at] = gates[at];
            }
            return new Output(logits, selection, std, gates, weights, null, null);
        }
        if (c.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K) {
            gates = scores(c.scoring(), selection, n, e);
            for (int i = 0; i < d.servedToken().length; i++) {
                int t = d.servedToken()[i], at = t * e + d.servedExpert()[i];
                double z = 1;
                if (c.normalizeTopK()) {
                    z = 0;
                    for (int j : d.weightSets()[t]) {
                        z += gates[t * e + j];
                    }
                }
                weights[at] = scale * gates[at] / z;
            }
        } else {
            for (int t = 0; t < n; t++) {
                int[] set = d.weightSets()[t];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int j : set) {
                    max = Math.max(max, selection[t * e + j]);
                }
                for (int j : set) {
                    sum += Math.exp(selection[t * e + j] - max);
                }
                for (int j : set) {
                    gates[t * e + j] = Math.exp(selection[t * e + j] - max) / sum;
                }
            }
            for (int i = 0; i < d.servedToken().length; i++) {
                int at = d.servedToken()[i] * e + d.servedExpert()[i];
                weights[at] = scale * gates[at];
            }
        }
        return new Output(logits, selection, std, gates, weights, null, null);
    }

    private Output soft(double[] x, Map<String, double[]> p, int n) {
        int h = c.hidden(), slots = c.experts() * c.slotsPerExpert();
        double[] mu = p.get("router.mu");
        double[] xs = x, ms = mu;
        double scale = 1;
        if (c.softNormalize()) {
            xs = normalizeRows(x, n, h);
            ms = normalizeRows(mu, slots, h);
            scale = p.get("router.scale")[0];
        }
        double[] logits = linear(xs, ms, null, n, h, slots);
        for (int i = 0; i < logits.length; i++) {
            logits[i] *= scale;
        }
        double[] combine = new double[n * slots], dispatch = new double[n * slots];
        for (int t = 0; t < n; t++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int s = 0; s < slots; s++) {
                max = Math.max(max, logits[t * slots + s]);
            }
            for (int s = 0; s < slots; s++) {
                sum += Math.exp(logits[t * slots + s] - max);
            }
            for (int s = 0; s < slots; s++) {
                combine[t * slots + s] = Math.exp(logits[t * slots + s] - max) / sum;
            }
        }
        for (int s = 0; s < slots; s++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int t = 0; t < n; t++) {
                max = Math.max(max, logits[t * slots + s]);
            }
            for (int t = 0; t < n; t++) {
                sum += Math.exp(logits[t * slots + s] - max);
            }
            for (int t = 0; t < n; t++) {
                dispatch[t * slots + s] = Math.exp(logits[t * slots + s] - max) / sum;
            }
        }
        return new Output(logits, null, null, null, null, dispatch, combine);
    }

    /** The value of a balance loss on a float64 routing with the decisions held fixed. */
    public double loss(BalanceLoss loss, Output o, Decisions d) {
        int n = d.tokens(), e = c.experts(), k = c.topK();
        return switch (loss) {
            case RouterZLoss z -> {
                double s = 0;
                for (int t = 0; t < n; t++) {
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int i = 0; i < e; i++) {
                        max = Math.max(max, o.logits()[t * e + i]);
                    }
                    for (int i = 0; i < e; i++) {
                        sum += Math.exp(o.logits()[t * e + i] - max);
                    }
                    double lse = max + Math.log(sum);
                    s += lse * lse;
                }
                yield s / n;
            }
            case ImportanceLoss i -> {
                double[] values = switch (i.of()) {
                    case CLEAN_SOFTMAX -> probabilities(o.logits(), n, e);
                    case NOISY_SOFTMAX -> probabilities(o.selection(), n, e);
                    case TOP_K_GATES -> keptGates(o, d);
                };
                double[] imp = new double[e];
                for (int t = 0; t < n; t++) {
                    for (int j = 0; j < e; j++) {
                        imp[j] += values[t * e + j];
                    }
                }
                yield cv2(imp);
            }
            case SwitchLoss s -> {
                double[] p = probabilities(o.logits(), n, e);
                double[] f = new double[e], pm = new double[e];
                for (int ch : d.choices()) {
                    f[ch] += 1.0 / (s.form() == SwitchLoss.Form.PAPER ? n * k : n);
                }
                for (int t = 0; t < n; t++) {
                    for (int j = 0; j < e; j++) {
                        pm[j] += p[t * e + j] / n;
                    }
                }
                double v = 0;
                for (int j = 0; j < e; j++) {
                    v += f[j] * pm[j];
                }
                yield e * v;
            }
            case SequenceLoss s -> {
                double[] p = probabilities(o.logits(), n, e);
                int len = d.sequenceLength(), seqs = n / len;
                double total = 0;
                for (int q = 0; q < seqs; q++) {
                    double[] f = new double[e], pm = new double[e];
                    for (int t = q * len; t < (q + 1) * len; t++) {
                        for (int j = 0; j < k; j++) {
                            f[d.choices()[t * k + j]] += (double) e / (k * len);
                        }
                        for (int j = 0; j < e; j++) {
                            pm[j] += p[t * e + j] / len;
                        }
                    }
                    for (int j = 0; j < e; j++) {
                        total += f[j] * pm[j];
                    }
                }
                yield total / seqs;
            }
            case LoadLoss l -> {
                double[] load = new double[e];
                for (int t = 0; t < n; t++) {
                    int[] order = d.thresholdOrder()[t];
                    for (int i = 0; i < e; i++) {
                        int th = order[k - 1];
                        if (l.threshold() == LoadLoss.Threshold.KTH_EXCLUDING_SELF) {
                            for (int j = 0; j < k; j++) {
                                if (order[j] == i) {
                                    th = order[k];
                                }
                            }
                        }
                        double z = (o.logits()[t * e + i] - o.selection()[t * e + th]) / o.std()[t * e + i];
                        load[i] += normalCdf(z);
                    }
                }
                yield cv2(load);
            }
        };
    }

    /** G(x): each token's gate weights on its weight set (before capacity), zero elsewhere. */
    private double[] keptGates(Output o, Decisions d) {
        int n = d.tokens(), e = c.experts();
        double[] kept = new double[n * e];
        for (int t = 0; t < n; t++) {
            double z = 0;
            for (int j : d.weightSets()[t]) {
                z += o.gates()[t * e + j];
            }
            boolean normalise = c.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K && c.normalizeTopK();
            for (int j : d.weightSets()[t]) {
                kept[t * e + j] = c.routedScalingFactor() * o.gates()[t * e + j] / (normalise ? z : 1);
            }
        }
        return kept;
    }

    /** Softmax rows, or sigmoid normalised per row. */
    public double[] probabilities(double[] logits, int n, int e) {
        double[] p = scores(c.scoring(), logits, n, e);
        if (c.scoring() == Scoring.SIGMOID) {
            for (int t = 0; t < n; t++) {
                double s = 0;
                for (int i = 0; i < e; i++) {
                    s += p[t * e + i];
                }
                for (int i = 0; i < e; i++) {
                    p[t * e + i] /= s;
                }
            }
        }
        return p;
    }

    public static double[] scores(Scoring scoring, double[] logits, int n, int e) {
        if (scoring == Scoring.SOFTMAX) {
            return Reference.softmax(logits, n, e);
        }
        double[] s = new double[n * e];
        for (int i = 0; i < s.length; i++) {
            s[i] = 1 / (1 + Math.exp(-logits[i]));
        }
        return s;
    }

    /** y [n, out] = x [n, in] · wᵀ + b. */
    public static double[] linear(double[] x, double[] w, double[] b, int n, int in, int out) {
        double[] y = Reference.matmulXWt(x, w, n, in, out);
        if (b != null) {
            for (int t = 0; t < n; t++) {
                for (int o = 0; o < out; o++) {
                    y[t * out + o] += b[o];
                }
            }
        }
        return y;
    }

    static double[] normalizeRows(double[] a, int rows, int cols) {
        double[] out = new double[a.length];
        for (int r = 0; r < rows; r++) {
            double sq = 0;
            for (int j = 0; j < cols; j++) {
                sq += a[r * cols + j] * a[r * cols + j];
            }
            double inv = 1 / Math.sqrt(sq + 1e-6);
            for (int j = 0; j < cols; j++) {
                out[r * cols + j] = a[r * cols + j] * inv;
            }
        }
        return out;
    }

    static double cv2(double[] v) {
        double mean = 0, var = 0;
        for (double x : v) {
            mean += x / v.length;
        }
        for (double x : v) {
            var += (x - mean) * (x - mean) / v.length;
        }
        return var / (mean * mean);
    }

    /** Φ(z) = erfc(−z/√2)/2 with core's float64 reference erfc. */
    public static double normalCdf(double z) {
        return 0.5 * Reference.erfc(-z / Math.sqrt(2));
    }
}
