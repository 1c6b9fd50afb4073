package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.random.RandomGenerator;

/**
 * Soft MoE's router (Puigcerver et al. 2023): one learned vector per slot, mu [slots, hidden] with
 * slots = experts × slotsPerExpert; logits[t, s] = ⟨x_t, mu_s⟩; dispatch weights are a softmax over the tokens
 * (each slot is a convex mix of the tokens), combine weights a softmax over the slots (each token a convex mix of
 * the slot outputs). With {@code softNormalize}, as the authors do for large models, x and mu are L2-normalised
 * (x · rsqrt(Σx² + 1e-6)) and the logits multiplied by a learned scale.
 */
public final class SoftMoeRouter implements Router {
    private static final float EPS = 1e-6f;

    private final MoeConfig config;
    private final Parameter mu;
    private final Parameter scale;

    /**
     * @param mu    [experts × slotsPerExpert, hidden], slot s belonging to expert s / slotsPerExpert
     * @param scale [1] (used with softNormalize; may be null otherwise)
     */
    public SoftMoeRouter(MoeConfig config, Tensor mu, Tensor scale) {
        this.config = config;
        int slots = config.experts() * config.slotsPerExpert();
        this.mu = new Parameter("router.mu", TopKRouter.check(mu, "router.mu", slots, config.hidden()));
        this.scale = config.softNormalize() ? new Parameter("router.scale", TopKRouter.check(scale, "router.scale", 1))
                : null;
    }

    private record Trace(Tensor xHat, float[] xInvNorm, Tensor muHat, float[] muInvNorm, float[] raw) {
    }

    @Override
    public Routing route(Tensor x, Mode mode, RandomGenerator random) {
        int n = x.rows(), slots = mu.value().dim(0);
        Tensor xHat = x, muHat = mu.value();
        float[] xInv = null, muInv = null;
        if (scale != null) {
            xInv = new float[n];
            xHat = normalizeRows(x, xInv);
            muInv = new float[slots];
            muHat = normalizeRows(mu.value(), muInv);
        }
        float[] raw = new float[n * slots];
        MatMul.forward(Tensor.of(raw, n, slots), xHat, muHat);
        float[] logits = raw.clone();
        if (scale != null) {
            float s = scale.value().getFloat(0);
            for (int i = 0; i < logits.length; i++) {
                logits[i] *= s;
            }
        }
        float[] combine = RouterMath.softmax(logits, n, slots);
        // Dispatch weights normalise over the tokens: a softmax over the rows of the transposed logits.
        float[] dispatch = RouterMath.transpose(
                RouterMath.softmax(RouterMath.transpose(logits, n, slots), slots, n), slots, n);
        Routing r = new Routing(n, config.experts(), 0, Scoring.SOFTMAX, logits);
        r.soft = new SoftDispatch(n, slots, config.slotsPerExpert(), dispatch, combine);
        r.trace = new Trace(xHat, xInv, muHat, muInv, raw);
        return r;
    }

    /** rows · rsqrt(Σ row² + eps), into a new F32 tensor; the inverse norms go to {@code inv}. */
    private static Tensor normalizeRows(Tensor a, float[] inv) {
        int rows = a.rows(), cols = a.cols();
        float[] v = a.toFloatArray();
        for (int r = 0; r < rows; r++) {
            double sq = 0;
            for (int c = 0; c < cols; c++) {
                sq += (double) v[r * cols + c] * v[r * cols + c];
            }
            inv[r] = (float) (1 / Math.sqrt(sq + EPS));
            for (int c = 0; c < cols; c++) {
                v[r * cols + c] *= inv[r];
            }
        }
        return Tensor.of(v, rows, cols);
    }

    @Override
    public void backward(Routing r, Tensor x, RouterGrads grads, Tensor dx) {
        Trace tr = (Trace) r.trace;
        SoftDispatch soft = r.soft;
        int n = r.tokens, slots = soft.slots();
        float[] dLogits = new float[n * slots];
        RouterMath.scoresBackward(Scoring.SOFTMAX, soft.combine(), grads.combine(), n, slots, dLogits);
        float[] dLogitsT = new float[n * slots];
        RouterMath.scoresBackward(Scoring.SOFTMAX, RouterMath.transpose(soft.dispatch(), n, slots),
                RouterMath.transpose(grads.dispatch(), n, slots), slots, n, dLogitsT);
        float[] fromDispatch = RouterMath.transpose(dLogitsT, slots, n);
        for (int i = 0; i < dLogits.length; i++) {
            dLogits[i] += fromDispatch[i];
        }
        float[] dRaw = dLogits;
        if (scale != null) {
            float s = scale.value().getFloat(0), dScale = 0;
            dRaw = new float[dLogits.length];
            for (int i = 0; i < dLogits.length; i++) {
                dScale += dLogits[i] * tr.raw()[i];
                dRaw[i] = dLogits[i] * s;
            }
            scale.grad().setFloat(0, scale.grad().getFloat(0) + dScale);
        }
        Tensor dRawT = Tensor.of(dRaw, n, slots);
        if (scale == null) {
            MatMul.backwardInput(dx, dRawT, mu.value(), true);
            MatMul.backwardWeight(mu.grad(), dRawT, x, true);
            return;
        }
        Tensor dxHat = Tensor.zeros(n, x.cols());
        MatMul.backwardInput(dxHat, dRawT, tr.muHat(), false);
        Tensor dMuHat = Tensor.zeros(slots, x.cols());
        MatMul.backwardWeight(dMuHat, dRawT, tr.xHat(), false);
        normalizeBackward(x, tr.xInvNorm(), dxHat, dx);
        normalizeBackward(mu.value(), tr.muInvNorm(), dMuHat, mu.grad());
    }

    /** y = a·ρ with ρ = (Σa² + eps)^(-1/2): da += ρ·dy − a·ρ³·⟨a, dy⟩, row by row. */
    private static void normalizeBackward(Tensor a, float[] inv, Tensor dy, Tensor da) {
        int rows = a.rows(), cols = a.cols();
        float[] av = a.toFloatArray(), dv = dy.toFloatArray();
        for (int r = 0; r < rows; r++) {
            double dot = 0;
            for (int c = 0; c < cols; c++) {
                dot += (double) av[r * cols + c] * dv[r * cols + c];
            }
            double rho = inv[r], rho3 = rho * rho * rho;
            for (int c = 0; c < cols; c++) {
                int i = r * cols + c;
                da.setFloat(i, (float) (da.getFloat(i) + rho * dv[i] - av[i] * rho3 * dot));
            }
        }
    }

    @Override
    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>();
        out.add(mu);
        if (scale != null) {
            out.add(scale);
        }
        return out;
    }

    @Override
    public Map<String, Tensor> buffers() {
        return Map.of();
    }
}
