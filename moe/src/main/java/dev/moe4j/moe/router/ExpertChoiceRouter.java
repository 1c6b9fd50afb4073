package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Dispatch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.random.RandomGenerator;

/**
 * Expert-choice routing (Zhou et al. 2022): scores S = softmax over experts of x · Wᵀ, and each expert takes the C
 * tokens of the batch with its highest scores, C = capacity (tokens × factor / experts), weighting each by its
 * score. Load is perfectly balanced by construction; a token may be taken by several experts or by none.
 *
 * <p>Inference cannot look at later tokens. With {@link ExpertChoiceDecode#THRESHOLD} every expert keeps, while
 * training, a running average of the score of the last (C-th) token it took, and at inference takes exactly the
 * tokens whose score reaches it: the routing of a token then depends on that token alone. With
 * {@link ExpertChoiceDecode#PREDICTOR} an {@link ExpertChoicePredictor} trained beside the router on the batch's
 * selections says instead which experts take the token; the thresholds are kept either way.
 */
public final class ExpertChoiceRouter implements Router {
    private final MoeConfig config;
    private final Parameter weight;
    private final Parameter bias;
    private final Tensor thresholds;
    private final ExpertChoicePredictor predictor;

    /**
     * @param thresholds [experts] F32 running thresholds (NaN until estimated); the router updates it in place
     */
    public ExpertChoiceRouter(MoeConfig config, Tensor weight, Tensor bias, Tensor thresholds) {
        this(config, weight, bias, thresholds, null);
    }

    /** @param predictor the predictor the config asks for ({@link MoeConfig#predictor()}), or null without one */
    public ExpertChoiceRouter(MoeConfig config, Tensor weight, Tensor bias, Tensor thresholds,
                              ExpertChoicePredictor predictor) {
        if (config.predictor().isPresent() != (predictor != null)) {
            throw new IllegalArgumentException("expert-choice router: the config " + (predictor == null
                    ? "asks for a predictor but none was given" : "has no predictor but one was given"));
        }
        this.config = config;
        this.predictor = predictor;
        int e = config.experts();
        this.weight = new Parameter("router.weight", TopKRouter.check(weight, "router.weight", e, config.hidden()));
        this.bias = config.routerBias() ? new Parameter("router.bias", TopKRouter.check(bias, "router.bias", e)) : null;
        this.thresholds = TopKRouter.check(thresholds, "router.expert_thresholds", e);
    }

    /** A fresh [experts] threshold buffer: not yet estimated. */
    public static Tensor unsetThresholds(int experts) {
        Tensor t = Tensor.zeros(experts);
        t.fill(Float.NaN);
        return t;
    }

    @Override
    public Routing route(Tensor x, Mode mode, RandomGenerator random) {
        int n = x.rows(), e = config.experts();
        float[] logits = Linear.forward(x, weight, bias);
        Routing r = new Routing(n, e, 0, config.scoring(), logits);
        float[] s = RouterMath.scores(config.scoring(), logits, n, e);
        int[] token = new int[n * e], expert = new int[n * e];
        float[] w = new float[n * e];
        int count = 0;
        boolean batch = mode == Mode.TRAINING || config.expertChoiceDecode() == ExpertChoiceDecode.BATCH_TOP_C;
        if (batch) {
            int capacity = config.capacity().perExpert(n, 1, e);
            float[] column = new float[n];
            int[] top = new int[capacity];
            for (int i = 0; i < e; i++) {
                for (int t = 0; t < n; t++) {
                    column[t] = s[t * e + i];
                }
                RouterMath.topK(column, 0, n, capacity, top, 0);
                for (int c = 0; c < capacity; c++) {
                    token[count] = top[c];
                    expert[count] = i;
                    w[count++] = column[top[c]];
                }
                if (mode == Mode.TRAINING && capacity > 0) {
                    updateThreshold(i, column[top[capacity - 1]]);
                }
            }
        } else if (config.expertChoiceDecode() == ExpertChoiceDecode.PREDICTOR) {
            boolean[] chosen = predictor.choose(predictor.forward(x).logits());
            for (int i = 0; i < e; i++) {
                for (int t = 0; t < n; t++) {
                    if (chosen[t * e + i]) {
                        token[count] = t;
                        expert[count] = i;
                        w[count++] = s[t * e + i];
                    }
                }
            }
        } else {
            for (int i = 0; i < e; i++) {
                float tau = thresholds.getFloat(i);
                if (Float.isNaN(tau)) {
                    throw new IllegalStateException("expert-choice thresholds were never estimated: train the layer "
                            + "first, load them with the weights, or route with BATCH_TOP_C");
                }
                for (int t = 0; t < n; t++) {
                    if (s[t * e + i] >= tau) {
                        token[count] = t;
                        expert[count] = i;
                        w[count++] = s[t * e + i];
                    }
                }
            }
        }
        boolean[] taken = new boolean[n];
        for (int i = 0; i < count; i++) {
            taken[token[i]] = true;
        }
        int untaken = 0;
        for (boolean b : taken) {
            untaken += b ? 0 : 1;
        }
        if (mode == Mode.TRAINING && predictor != null) {
            boolean[] selected = new boolean[n * e];
            for (int i = 0; i < count; i++) {
                selected[token[i] * e + expert[i]] = true;
            }
            r.predictorFit = predictor.fit(predictor.forward(x), selected);
        }
        r.gates = s;
        r.dispatch = Dispatch.group(n, e, count, token, expert, w);
        r.requested = n;
        r.dropped = untaken;
        return r;
    }

    private void updateThreshold(int expert, float observed) {
        float old = thresholds.getFloat(expert);
        float m = (float) config.thresholdMomentum();
        thresholds.setFloat(expert, Float.isNaN(old) ? observed : (1 - m) * old + m * observed);
    }

    @Override
    public void backward(Routing r, Tensor x, RouterGrads grads, Tensor dx) {
        int n = r.tokens, e = r.experts;
        float[] ds = new float[n * e];
        if (grads.hasGates()) {
            System.arraycopy(grads.gates(), 0, ds, 0, ds.length);
        }
        if (grads.hasWeights()) {
            float[] dw = grads.weights();
            for (int i = 0; i < ds.length; i++) {
                ds[i] += dw[i];
            }
        }
        float[] dLogits = grads.hasLogits() ? grads.logits().clone() : new float[n * e];
        RouterMath.scoresBackward(config.scoring(), r.gates, ds, n, e, dLogits);
        Linear.backward(dLogits, x, weight, bias, dx);
        if (r.predictorFit != null) {
            predictor.backward(r.predictorFit, x, dx);
        }
    }

    /** The predictor trained beside the router, or null. */
    public ExpertChoicePredictor predictor() {
        return predictor;
    }

    @Override
    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>();
        out.add(weight);
        if (bias != null) {
            out.add(bias);
        }
        if (predictor != null) {
            out.addAll(predictor.parameters());
        }
        return out;
    }

    @Override
    public Map<String, Tensor> buffers() {
        var out = new LinkedHashMap<String, Tensor>();
        out.put("router.expert_thresholds", thresholds);
        return out;
    }
}
