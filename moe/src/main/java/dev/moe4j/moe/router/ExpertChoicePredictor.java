package dev.moe4j.moe.router;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.moe.stats.PredictorConfusion;

import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;

/**
 * Predicts, from the router's input alone, whether each expert of an expert-choice router would take a token: the
 * auxiliary predictor of Mixture-of-Depths (Raposo et al. 2024), per expert. While training it learns, by binary
 * cross-entropy, the selections each expert made among the batch's tokens; at inference, where later tokens are
 * not there to compete with, its predictions route the token.
 *
 * <p>An MLP hidden → width (SiLU) → experts, or a linear probe hidden → experts. Its logits are per (token,
 * expert) pair: probability σ(logit) that the expert takes the token.
 */
public final class ExpertChoicePredictor {
    private final PredictorOptions options;
    private final int experts;
    private final Parameter hiddenWeight;
    private final Parameter hiddenBias;
    private final Parameter outWeight;
    private final Parameter outBias;

    /**
     * @param hiddenWeight [width, hidden], or null for a linear probe (then hiddenBias is null too)
     * @param hiddenBias   [width]
     * @param outWeight    [experts, width] ([experts, hidden] for a linear probe)
     * @param outBias      [experts]
     */
    public ExpertChoicePredictor(PredictorOptions options, int hidden, int experts, Tensor hiddenWeight,
                                 Tensor hiddenBias, Tensor outWeight, Tensor outBias) {
        this.options = options;
        this.experts = experts;
        int in = hidden;
        if (options.linearProbe()) {
            if (hiddenWeight != null || hiddenBias != null) {
                throw new IllegalArgumentException("a linear probe has no hidden layer");
            }
            this.hiddenWeight = null;
            this.hiddenBias = null;
        } else {
            this.hiddenWeight = new Parameter(HIDDEN_WEIGHT, TopKRouter.check(hiddenWeight, HIDDEN_WEIGHT,
                    options.width(), hidden));
            this.hiddenBias = new Parameter(HIDDEN_BIAS, TopKRouter.check(hiddenBias, HIDDEN_BIAS, options.width()));
            in = options.width();
        }
        this.outWeight = new Parameter(OUT_WEIGHT, TopKRouter.check(outWeight, OUT_WEIGHT, experts, in));
        this.outBias = new Parameter(OUT_BIAS, TopKRouter.check(outBias, OUT_BIAS, experts));
    }

    public static final String HIDDEN_WEIGHT = "router.predictor.hidden.weight";
    public static final String HIDDEN_BIAS = "router.predictor.hidden.bias";
    public static final String OUT_WEIGHT = "router.predictor.out.weight";
    public static final String OUT_BIAS = "router.predictor.out.bias";

    /** Weights N(0, 1/fan-in), so that logits start near N(0, 1); biases zero. */
    public static ExpertChoicePredictor initialize(PredictorOptions options, int hidden, int experts,
                                                   RandomGenerator random) {
        if (options.linearProbe()) {
            return new ExpertChoicePredictor(options, hidden, experts, null, null,
                    Routers.gaussian(random, 1 / Math.sqrt(hidden), experts, hidden), Tensor.zeros(experts));
        }
        int w = options.width();
        return new ExpertChoicePredictor(options, hidden, experts,
                Routers.gaussian(random, 1 / Math.sqrt(hidden), w, hidden), Tensor.zeros(w),
                Routers.gaussian(random, 1 / Math.sqrt(w), experts, w), Tensor.zeros(experts));
    }

    public PredictorOptions options() {
        return options;
    }

    /**
     * One forward pass: the logits [tokens, experts] on the host, and what the backward step needs (the hidden
     * layer's pre-activations on the host and its activations where x is).
     */
    public record Pass(float[] logits, float[] preActivation, Tensor activation) {
    }

    public Pass forward(Tensor x) {
        if (hiddenWeight == null) {
            return new Pass(Linear.forward(x, outWeight, outBias), null, null);
        }
        int n = x.rows(), w = options.width();
        float[] pre = Linear.forward(x, hiddenWeight, hiddenBias);
        float[] act = new float[pre.length];
        for (int i = 0; i < pre.length; i++) {
            act[i] = pre[i] * RouterMath.sigmoid(pre[i]);
        }
        Tensor a = Backend.of(x).upload(Tensor.of(act, n, w), DType.F32);
        return new Pass(Linear.forward(a, outWeight, outBias), pre, a);
    }

    /**
     * The experts each token goes to, [tokens, experts]: those whose predicted probability reaches 0.5 (logit ≥ 0),
     * or the {@code topK} of highest prediction when the options ask for a fixed count.
     */
    public boolean[] choose(float[] logits) {
        int n = logits.length / experts;
        boolean[] chosen = new boolean[logits.length];
        if (options.topK() == 0) {
            for (int i = 0; i < logits.length; i++) {
                chosen[i] = logits[i] >= 0;
            }
            return chosen;
        }
        int[] top = new int[options.topK()];
        for (int t = 0; t < n; t++) {
            RouterMath.topK(logits, t * experts, experts, top.length, top, 0);
            for (int i : top) {
                chosen[t * experts + i] = true;
            }
        }
        return chosen;
    }

    /** A training pass measured against the batch's selections: what the loss and its backward step need. */
    public record Fit(Pass pass, boolean[] selected, double loss, PredictorConfusion confusion) {
    }

    /**
     * The mean binary cross-entropy of the pass's predictions against {@code selected} [tokens, experts] (the pairs
     * the batch routed), and how its choices compare with them.
     */
    public Fit fit(Pass pass, boolean[] selected) {
        float[] z = pass.logits();
        double loss = 0;
        for (int i = 0; i < z.length; i++) {
            // −log σ(z) = softplus(−z) and −log(1 − σ(z)) = softplus(z)
            loss += selected[i] ? RouterMath.softplus(-z[i]) : RouterMath.softplus(z[i]);
        }
        return new Fit(pass, selected, loss / z.length, PredictorConfusion.of(choose(z), selected));
    }

    /**
     * Adds the gradient of coefficient · {@link Fit#loss} into the predictor's parameters and, unless the options
     * stop it there, into {@code dx} [tokens, hidden].
     */
    public void backward(Fit fit, Tensor x, Tensor dx) {
        float[] z = fit.pass().logits();
        float scale = (float) (options.coefficient() / z.length);
        float[] dz = new float[z.length];
        for (int i = 0; i < z.length; i++) {
            dz[i] = scale * (RouterMath.sigmoid(z[i]) - (fit.selected()[i] ? 1 : 0));
        }
        Tensor into = options.stopGradient() ? null : dx;
        if (hiddenWeight == null) {
            Linear.backward(dz, x, outWeight, outBias, into);
            return;
        }
        Backend b = Backend.of(x);
        Pass p = fit.pass();
        Tensor dActivation = b.zeros(DType.F32, x.rows(), options.width());
        Linear.backward(dz, p.activation(), outWeight, outBias, dActivation);
        float[] dPre = b.toHost(dActivation).toFloatArray();
        float[] pre = p.preActivation();
        for (int i = 0; i < dPre.length; i++) {
            float s = RouterMath.sigmoid(pre[i]);
            dPre[i] *= s * (1 + pre[i] * (1 - s));
        }
        Linear.backward(dPre, x, hiddenWeight, hiddenBias, into);
    }

    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>();
        if (hiddenWeight != null) {
            out.add(hiddenWeight);
            out.add(hiddenBias);
        }
        out.add(outWeight);
        out.add(outBias);
        return out;
    }
}
