package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.kernels.RmsNorm;
import dev.moe4j.core.kernels.VectorMath;
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

    private record Trace(Tensor xHat, Tensor muHat, float[] raw) {
    }

    @Override
    public Routing route(Tensor x, Mode mode, RandomGenerator random) {
        int n = x.rows(), slots = mu.value().dim(0);
        Tensor xHat = x, muHat = mu.value();
        if (scale != null) {
            xHat = normalize(x);
            muHat = normalize(mu.value());
        }
        float[] raw = new float[n * slots];
        MatMul.forward(Tensor.of(raw, n, slots), xHat, muHat);
        float[] logits = raw.clone();
        if (scale != null) {
            float s = logitScale();
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
        r.trace = new Trace(xHat, muHat, raw);
        return r;
    }

    /**
     * x · rsqrt(Σx² + 1e-6) is √H times core's RMS norm with eps 1e-6 / H; the √H of both operands goes into the
     * logit scale instead ({@link #logitScale}).
     */
    private Tensor normalize(Tensor a) {
        Tensor out = Tensor.zeros(a.rows(), a.cols());
        RmsNorm.forward(out, a, null, rmsEps());
        return out;
    }

    private float rmsEps() {
        return EPS / config.hidden();
    }

    /** scale / H: the learned scale of the L2-normalised product, over the RMS-normalised one. */
    private float logitScale() {
        return scale.value().getFloat(0) / config.hidden();
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
        Tensor dRaw = Tensor.of(dLogits, n, slots);
        if (scale == null) {
            MatMul.backwardInput(dx, dRaw, mu.value(), true);
            MatMul.backwardWeight(mu.grad(), dRaw, x, true);
            return;
        }
        float s = logitScale(), dScale = 0;
        for (int i = 0; i < dLogits.length; i++) {
            dScale += dLogits[i] * tr.raw()[i];
            dLogits[i] *= s;
        }
        scale.grad().setFloat(0, scale.grad().getFloat(0) + dScale / config.hidden());
        Tensor dxHat = Tensor.zeros(n, x.cols());
        MatMul.backwardInput(dxHat, dRaw, tr.muHat(), false);
        Tensor dMuHat = Tensor.zeros(slots, x.cols());
        MatMul.backwardWeight(dMuHat, dRaw, tr.xHat(), false);
        normalizeBackward(x, dxHat, dx);
        normalizeBackward(mu.value(), dMuHat, mu.grad());
    }

    /** da += the RMS norm's backward of dy. */
    private void normalizeBackward(Tensor a, Tensor dy, Tensor da) {
        Tensor d = Tensor.zeros(a.rows(), a.cols());
        RmsNorm.backward(d, null, dy, a, null, rmsEps());
        VectorMath.addInPlace(da, d);
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
