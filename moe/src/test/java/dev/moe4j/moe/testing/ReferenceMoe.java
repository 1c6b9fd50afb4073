package dev.moe4j.moe.testing;

import dev.moe4j.core.testing.Reference;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.LossTerm;

import java.util.Map;

/**
 * A naive float64 MoE layer: {@link ReferenceRouting} for the router, then each served (token, expert) pair's
 * FFN computed on its own and added with its weight (Soft MoE: slot inputs as mixes of tokens, outputs as mixes
 * of slots), plus the shared expert. Parameters are named as the layer names them.
 */
public final class ReferenceMoe {
    private final MoeConfig c;
    private final ReferenceRouting routing;

    public ReferenceMoe(MoeConfig c) {
        this.c = c;
        this.routing = new ReferenceRouting(c);
    }

    public ReferenceRouting routing() {
        return routing;
    }

    /** The layer output [tokens, hidden]. */
    public double[] output(double[] x, Map<String, double[]> p, ReferenceRouting.Decisions d) {
        int n = d.tokens(), h = c.hidden(), e = c.experts();
        var r = routing.route(x, p, d);
        double[] out = new double[n * h];
        if (c.router() == RouterKind.SOFT) {
            int slots = e * c.slotsPerExpert();
            for (int s = 0; s < slots; s++) {
                double[] in = new double[h];
                for (int t = 0; t < n; t++) {
                    for (int j = 0; j < h; j++) {
                        in[j] += r.dispatch()[t * slots + s] * x[t * h + j];
                    }
                }
                double[] y = ffn("experts.", s / c.slotsPerExpert(), in, p, c.intermediate());
                for (int t = 0; t < n; t++) {
                    for (int j = 0; j < h; j++) {
                        out[t * h + j] += r.combine()[t * slots + s] * y[j];
                    }
                }
            }
        } else {
            for (int i = 0; i < d.servedToken().length; i++) {
                int t = d.servedToken()[i], ex = d.servedExpert()[i];
                double w = r.weights()[t * e + ex];
                double[] y = ffn("experts.", ex, java.util.Arrays.copyOfRange(x, t * h, t * h + h), p, c.intermediate());
                for (int j = 0; j < h; j++) {
                    out[t * h + j] += w * y[j];
                }
            }
        }
        if (c.sharedIntermediate() > 0) {
            for (int t = 0; t < n; t++) {
                double[] xt = java.util.Arrays.copyOfRange(x, t * h, t * h + h);
                double[] y = ffn("shared_experts.", 0, xt, p, c.sharedIntermediate());
                double g = 1;
                if (c.sharedGate()) {
                    g = 1 / (1 + Math.exp(-Reference.dotProduct(xt, p.get("shared_expert_gate.weight"))));
                }
                for (int j = 0; j < h; j++) {
                    out[t * h + j] += g * y[j];
                }
            }
        }
        return out;
    }

    /** Σ dOut ⊙ output + Σ coefficient · loss: the scalar whose gradient the layer's backward computes. */
    public double objective(double[] x, Map<String, double[]> p, ReferenceRouting.Decisions d, double[] dOut) {
        double v = Reference.dotProduct(output(x, p, d), dOut);
        if (!c.losses().isEmpty()) {
            var r = routing.route(x, p, d);
            for (LossTerm term : c.losses()) {
                v += term.coefficient() * routing.loss(term.loss(), r, d);
            }
        }
        return v;
    }

    /** One expert's FFN on one input row. */
    private double[] ffn(String prefix, int e, double[] x, Map<String, double[]> p, int inter) {
        int h = c.hidden();
        int inRows = c.ffn().gated() ? 2 * inter : inter;
        double[] w = slice(p.get(prefix + "gate_up_proj"), e, inRows * h);
        double[] pre = Reference.matmulXWt(x, w, 1, h, inRows);
        double[] bias = p.get(prefix + "gate_up_proj_bias");
        if (bias != null) {
            double[] b = slice(bias, e, inRows);
            for (int i = 0; i < inRows; i++) {
                pre[i] += b[i];
            }
        }
        double[] act = switch (c.ffn()) {
            case ExpertFfn.Gated g -> Reference.glu(g.glu(), pre, 1, inter);
            case ExpertFfn.Plain pl -> Reference.activation(pl.activation(), pre);
        };
        double[] y = Reference.matmulXWt(act, slice(p.get(prefix + "down_proj"), e, h * inter), 1, inter, h);
        double[] downBias = p.get(prefix + "down_proj_bias");
        if (downBias != null) {
            double[] b = slice(downBias, e, h);
            for (int j = 0; j < h; j++) {
                y[j] += b[j];
            }
        }
        return y;
    }

    private static double[] slice(double[] a, int index, int size) {
        return java.util.Arrays.copyOfRange(a, index * size, (index + 1) * size);
    }
}
