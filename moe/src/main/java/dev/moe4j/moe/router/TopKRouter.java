package dev.moe4j.moe.router;

import dev.moe4j.core.Parallel;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.TopKRouting;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.TokenDispatcher;
import dev.moe4j.moe.router.Noise.Kind;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.random.RandomGenerator;

/**
 * Token-choice routing: each token keeps its k best experts. Covers the field's variants through
 * {@link MoeConfig}: softmax or sigmoid scores; score-then-top-k (renormalised or not) or top-k-then-softmax;
 * a router bias; a selection-only bias and group-limited selection (DeepSeek-V3); a routed scaling factor; jitter,
 * fixed or learned Gaussian noise (Shazeer et al. 2017); k = 1 is Switch and k = experts is a dense MoE.
 *
 * <p>Gate weights: with score-then-top-k, wᵢ = c · sᵢ (/ Σ over the token's weight set when renormalised); with
 * top-k-then-softmax, w = c · softmax over the weight set's selection logits. The weight set is the token's k
 * choices when an overflowing choice is dropped (the survivors keep their weights, as in Switch and V-MoE), and
 * the experts actually served when it is re-routed (the token is gated as if those had been its choices).
 */
public final class TopKRouter implements Router {
    /**
     * Tokens per parallel task in the per-token steps of routing (choices, priorities, gate weights): each token's
     * result depends on its own row only, so the split changes nothing but the time, which matters on a GPU, where
     * the device waits for the host's routing.
     */
    private static final int TOKENS_PER_TASK = 1024;

    private final MoeConfig config;
    private final Parameter weight;
    private final Parameter bias;
    private final Parameter noiseWeight;
    private final Tensor selectionBias;
    private final Lora adapter;

    /**
     * @param weight        [experts, hidden] the router linear
     * @param bias          [experts] or null
     * @param noiseWeight   [experts, hidden] W_noise for learned Gaussian noise, else null
     * @param selectionBias [experts] F32 bias on the selection scores, or null
     */
    public TopKRouter(MoeConfig config, Tensor weight, Tensor bias, Tensor noiseWeight, Tensor selectionBias) {
        this(config, weight, bias, noiseWeight, selectionBias, null);
    }

    /**
     * A router whose linear carries a LoRA {@code adapter} (a [r, hidden], b [experts, r]; PEFT's LoRA on the
     * router weight): its logits are x · (W + scale · b · a)ᵀ (+ bias). Null: none.
     */
    public TopKRouter(MoeConfig config, Tensor weight, Tensor bias, Tensor noiseWeight, Tensor selectionBias,
                      Lora adapter) {
        this.config = config;
        if (adapter != null && (adapter.a().cols() != config.hidden() || adapter.b().rows() != config.experts())) {
            throw new IllegalArgumentException("router adapter: expected a [r, " + config.hidden() + "] and b ["
                    + config.experts() + ", r], got " + adapter.a().value() + " and " + adapter.b().value());
        }
        if (adapter != null && !(adapter.a() instanceof Parameter && adapter.b() instanceof Parameter)) {
            throw new IllegalArgumentException("router adapter: a and b must be parameters");
        }
        this.adapter = adapter;
        int e = config.experts(), h = config.hidden();
        check(weight, "router.weight", e, h);
        this.weight = new Parameter("router.weight", weight);
        this.bias = config.routerBias() ? new Parameter("router.bias", check(bias, "router.bias", e)) : null;
        this.noiseWeight = config.noise().kind() == Kind.LEARNED_GAUSSIAN
                ? new Parameter("router.noise_weight", check(noiseWeight, "router.noise_weight", e, h)) : null;
        this.selectionBias = config.selectionBias() ? check(selectionBias, "router.selection_bias", e) : null;
    }

    static Tensor check(Tensor t, String name, int... shape) {
        if (t == null || !t.hasShape(shape)) {
            throw new IllegalArgumentException(name + ": expected shape " + java.util.Arrays.toString(shape)
                    + ", got " + t);
        }
        return t;
    }

    /** Each token's experts handed in by {@link #fixChoices}, or null: the router chooses. */
    private int[] fixedChoices;

    /**
     * Makes the following passes route token t to {@code choices[t·k .. t·k+k)} (best first) instead of its own top
     * k; null gives the choice back to the router. The gate weights are still computed from this router's own logits.
     * For parity tests that compare one device's arithmetic with another's under the same routing decisions, where a
     * near-tie between a token's k-th and (k+1)-th expert lets rounding route it elsewhere.
     */
    public void fixChoices(int[] choices) {
        this.fixedChoices = choices == null ? null : choices.clone();
    }

    /** What backward needs beyond the {@link Routing}. */
    private record Trace(Tensor routerInput, float[] jitter, float[] noisePreActivation, float[] selection,
                         float[] scores, int[] weightSet, int[] weightSetSize, Tensor adapterRank) {
    }

    @Override
    public Routing route(Tensor x, Mode mode, RandomGenerator random) {
        return route(x, mode, random, null);
    }

    /**
     * Routes as {@link #route(Tensor, Mode, RandomGenerator)}, the rows following {@code policies} (inference only;
     * null or every row trained: the router's own routing, untouched).
     */
    public Routing route(Tensor x, Mode mode, RandomGenerator random, PolicyRows policies) {
        int n = x.rows(), h = x.cols(), e = config.experts();
        Plan plan = Plan.of(policies, config, n);
        if (plan != null && mode == Mode.TRAINING) {
            throw new IllegalArgumentException("routing policies apply at inference; a training pass routes as configured");
        }
        boolean training = mode == Mode.TRAINING;
        Noise noise = config.noise();
        Tensor input = x;
        float[] jitter = null;
        if (training && noise.kind() == Kind.JITTER && noise.amount() > 0) {
            jitter = new float[n * h];
            float[] jittered = x.toFloatArray();
            for (int i = 0; i < jitter.length; i++) {
                jitter[i] = (float) (1 - noise.amount() + 2 * noise.amount() * random.nextDouble());
                jittered[i] *= jitter[i];
            }
            input = Tensor.of(jittered, n, h);
        }
        Linear.Output linear = Linear.forward(input, weight, bias, adapter);
        float[] logits = linear.logits();
        Routing r = new Routing(n, e, plan == null ? config.topK() : plan.width(), config.scoring(), logits);
        float[] selection = logits, pre = null;
        if (training && noise.isGaussian()) {
            float[] sample = new float[n * e], std = new float[n * e];
            if (noise.kind() == Kind.LEARNED_GAUSSIAN) {
                pre = Linear.forward(x, noiseWeight, null);
                for (int i = 0; i < std.length; i++) {
                    std[i] = RouterMath.softplus(pre[i]);
                }
            } else {
                java.util.Arrays.fill(std, (float) noise.amount());
            }
            selection = new float[n * e];
            for (int i = 0; i < selection.length; i++) {
                sample[i] = (float) random.nextGaussian();
                selection[i] = logits[i] + sample[i] * std[i];
            }
            r.noise = sample;
            r.noiseStd = std;
            r.noisyLogits = selection;
        }
        r.jitter = jitter;
        gate(r, selection, input, jitter, pre, linear.lowRank(), plan, fixedChoices);
        return r;
    }

    /**
     * Routes from precomputed router logits [tokens, experts], without noise: what inference does after the
     * router linear. For analysing stored logits (e.g. the reference aux losses); it has no backward.
     */
    public Routing routeLogits(float[] logits, int tokens) {
        return routeLogits(logits, tokens, null);
    }

    /** {@link #routeLogits(float[], int)} with the tokens following {@code policies} (null: as trained). */
    public Routing routeLogits(float[] logits, int tokens, PolicyRows policies) {
        Plan plan = Plan.of(policies, config, tokens);
        Routing r = new Routing(tokens, config.experts(), plan == null ? config.topK() : plan.width(), config.scoring(),
                logits);
        gate(r, logits, null, null, null, null, plan, null);
        return r;
    }

    /**
     * An inference routing left on the device of its input: each token's experts [tokens, k] (I32, best first) and
     * gate weights [tokens, k] (F32), which the experts read there, and the host's {@link Routing} of the same
     * decisions, made only when asked for (statistics, expert traces, losses): the logits and the device's choices
     * are copied back then, so a decoding step that nobody observes never waits for its routing.
     */
    public record DeviceRouting(Tensor experts, Tensor weights, Supplier<Routing> onHost) {
    }

    /**
     * Routes x where it lies when its backend routes itself ({@link Backend#routeTopK}) and nothing about this pass
     * needs the host: no choices fixed by {@link #fixChoices} and a capacity that cannot drop a choice (so the choices
     * are the tokens' own top k). An inference pass without routing policies, noise or jitter, which the caller
     * ensures. Null otherwise (the host CPU among them): route with {@link #route}.
     */
    public DeviceRouting routeOnDevice(Tensor x) {
        Backend b = Backend.of(x);
        int n = x.rows(), e = config.experts(), k = config.topK();
        if (b.device().isHost() || fixedChoices != null || config.capacity().perExpert(n, k, e) < n) {
            return null;
        }
        GroupLimit g = config.groupLimit();
        Tensor selection = selectionBias == null ? null : b.upload(selectionBias, DType.F32);
        var spec = new TopKRouting(k, config.scoring() == Scoring.SIGMOID,
                config.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K, config.normalizeTopK(),
                (float) config.routedScalingFactor(), selection, g.isLimited() ? g.groups() : 0, g.topGroups(),
                g.scoredPerGroup());
        Tensor logits = Linear.logits(x, weight, bias, adapter);
        Tensor experts = b.empty(DType.I32, n, k), weights = b.empty(DType.F32, n, k);
        if (!b.routeTopK(experts, weights, logits, spec)) {
            return null; // beyond the backend's limits (no model's): the caller's host routing repeats the product
        }
        return new DeviceRouting(experts, weights, () -> {
            int[] choices = b.toHost(experts).segment().toArray(ValueLayout.JAVA_INT);
            Routing r = new Routing(n, e, k, config.scoring(), b.toHost(logits).toFloatArray());
            // the device's choices, so that what is reported is what ran; the weights are the host's arithmetic
            gate(r, r.logits, null, null, null, null, null, choices);
            return r;
        });
    }

    /**
     * The routing policies of a pass resolved for this layer: one {@link RoutingPolicy.Layer} per run of rows, and
     * the room each token's choices take (the largest count any of them may choose).
     */
    private record Plan(RoutingPolicy.Layer[] layers, int[] starts, int width, boolean masks,
                        boolean needsProbabilities) {
        /** Null where every row routes as trained. */
        static Plan of(PolicyRows rows, MoeConfig config, int tokens) {
            if (rows == null || rows.allTrained()) {
                return null;
            }
            if (rows.rows() != tokens) {
                throw new IllegalArgumentException("policies for " + rows.rows() + " rows, routing " + tokens);
            }
            var layers = new RoutingPolicy.Layer[rows.policies().size()];
            int width = 1;
            boolean masks = false, probabilities = false;
            for (int i = 0; i < layers.length; i++) {
                layers[i] = rows.policies().get(i).forLayer(rows.layer(), config);
                width = Math.max(width, layers[i].most());
                masks |= layers[i].mask() != null;
                probabilities |= layers[i].needsProbabilities();
            }
            return new Plan(layers, rows.starts(), width, masks, probabilities);
        }

        /** The selection logits with −∞ where a row's policy masks an expert (the same array when nothing is masked). */
        float[] masked(float[] selection, int e) {
            if (!masks) {
                return selection;
            }
            float[] out = selection.clone();
            mask(out, e);
            return out;
        }

        /** Sets −∞ where a row's policy masks an expert. */
        void mask(float[] values, int e) {
            for (int s = 0; s < layers.length; s++) {
                boolean[] m = layers[s].mask();
                if (m == null) {
                    continue;
                }
                for (int t = starts[s]; t < starts[s + 1]; t++) {
                    for (int i = 0; i < e; i++) {
                        if (m[i]) {
                            values[t * e + i] = Float.NEGATIVE_INFINITY;
                        }
                    }
                }
            }
        }
    }

    /** How a group of rows is served: the trained capacity, or a policy's. */
    private record Service(Capacity capacity, Overflow overflow, Priority priority) {
    }

    /** Gates the routing; {@code fixed}, when given, are each token's k experts (see {@link #fixChoices}). */
    private void gate(Routing r, float[] selection, Tensor input, float[] jitter, float[] pre, Tensor adapterRank,
                      Plan plan, int[] fixed) {
        int n = r.tokens, e = r.experts, k = r.k;
        boolean scoreFirst = config.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K;
        float[] masked = plan == null ? selection : plan.masked(selection, e);
        float[] scores = scoreFirst ? RouterMath.scores(config.scoring(), masked, n, e) : null;
        if (scores != null && config.scoring() == Scoring.SOFTMAX && selection == r.logits && masked == selection) {
            // the softmax of the clean logits is the routing's probabilities: a copy saves computing it again
            r.probabilities = scores.clone();
        }
        float[] key = (scoreFirst ? scores : masked).clone();
        if (selectionBias != null) {
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < e; i++) {
                    key[t * e + i] += selectionBias.getFloat(i);
                }
            }
        }
        if (masked != selection) {
            plan.mask(key, e); // a sigmoid's zero score (plus a bias) must not bring a masked expert back
        }
        if (config.groupLimit().isLimited()) {
            maskGroups(key, n, e);
        }
        int[] choices = new int[n * k];
        int[] chosen = new int[n];
        if (plan == null && fixed != null) {
            if (fixed.length != n * k) {
                throw new IllegalStateException("fixed choices for " + fixed.length / k + " tokens, routing " + n);
            }
            System.arraycopy(fixed, 0, choices, 0, n * k);
            java.util.Arrays.fill(chosen, k);
        } else if (plan == null) {
            Parallel.forRange(n, TOKENS_PER_TASK, (from, to) -> {
                for (int t = from; t < to; t++) {
                    RouterMath.topK(key, t * e, e, k, choices, t * k);
                }
            });
            java.util.Arrays.fill(chosen, k);
        } else {
            float[] probs = !plan.needsProbabilities() ? null
                    : scoreFirst && config.scoring() == Scoring.SOFTMAX ? scores
                    : RouterMath.probabilities(config.scoring(), masked, n, e);
            for (int s = 0; s < plan.layers().length; s++) {
                RoutingPolicy.Layer layer = plan.layers()[s];
                int first = plan.starts()[s];
                Parallel.forRange(plan.starts()[s + 1] - first, TOKENS_PER_TASK, (from, to) -> {
                    for (int t = first + from; t < first + to; t++) {
                        chosen[t] = layer.choose(key, probs, t * e, e, choices, t * k, k);
                    }
                });
            }
        }
        // Rows served together: all of them under the trained capacity, or the rows of each policy that bounds one.
        var groups = new java.util.LinkedHashMap<Service, List<int[]>>();
        var trained = new Service(config.capacity(), config.overflow(), config.priority());
        if (plan == null) {
            groups.put(trained, List.of(new int[] {0, n}));
        } else {
            for (int s = 0; s < plan.layers().length; s++) {
                RoutingPolicy p = plan.layers()[s].policy();
                Service service = p.capacity() == null ? trained : new Service(p.capacity(), p.overflow(), p.priority());
                groups.computeIfAbsent(service, g -> new ArrayList<>()).add(new int[] {plan.starts()[s], plan.starts()[s + 1]});
            }
        }
        int[] servedToken = new int[n * k], servedExpert = new int[n * k];
        int count = 0, requested = 0, dropped = 0, rerouted = 0;
        int[] weightSet = new int[n * k], setSize = new int[n];
        for (var group : groups.entrySet()) {
            Service service = group.getKey();
            int m = group.getValue().stream().mapToInt(run -> run[1] - run[0]).sum();
            if (m == 0) {
                continue;
            }
            // the group's rows in order (null: every row of the pass, as without policies)
            int[] rows = m == n ? null : group.getValue().stream()
                    .flatMapToInt(run -> java.util.stream.IntStream.range(run[0], run[1])).toArray();
            int[] subChoices = rows == null ? choices : new int[m * k];
            int assignments = 0;
            for (int i = 0; i < m; i++) {
                if (rows != null) {
                    System.arraycopy(choices, rows[i] * k, subChoices, i * k, k);
                }
                assignments += chosen[rows == null ? i : rows[i]];
            }
            int capacity = plan == null ? service.capacity().perExpert(n, k, e)
                    : service.capacity().perExpertOfAssignments(m, assignments, e);
            boolean reroute = service.overflow() == Overflow.NEXT_CHOICE && capacity < m;
            int[] preference = null;
            if (reroute) {
                // Every expert in order of preference; those outside the token's groups (or masked) come back as -1.
                int[] order = preference = new int[m * e];
                Parallel.forRange(m, TOKENS_PER_TASK, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        RouterMath.topK(key, (rows == null ? i : rows[i]) * e, e, e, order, i * e);
                    }
                });
            }
            float[] scored = scores, selected = masked;
            // Only batch priority routing orders tokens by score; by position, the dispatcher never reads it.
            float[] priority = service.priority() == Priority.SCORE ? new float[m] : null;
            if (priority != null) {
                Parallel.forRange(m, TOKENS_PER_TASK, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        priority[i] = topProbability(scored, selected, rows == null ? i : rows[i], e);
                    }
                });
            }
            var served = TokenDispatcher.assign(m, e, k, subChoices, preference, e, priority, capacity,
                    service.overflow(), service.priority());
            for (int i = 0; i < served.count(); i++) {
                int t = rows == null ? served.token()[i] : rows[served.token()[i]];
                servedToken[count] = t;
                servedExpert[count++] = served.expert()[i];
                if (reroute) {
                    weightSet[t * k + setSize[t]++] = served.expert()[i];
                }
            }
            if (!reroute && rows == null) {
                System.arraycopy(choices, 0, weightSet, 0, n * k);
                System.arraycopy(chosen, 0, setSize, 0, n);
            } else if (!reroute) {
                for (int t : rows) {
                    System.arraycopy(choices, t * k, weightSet, t * k, k);
                    setSize[t] = chosen[t];
                }
            }
            requested += served.requested();
            dropped += served.dropped();
            rerouted += served.rerouted();
        }
        float c = (float) config.routedScalingFactor();
        float[] gates;
        float[] denominator = new float[n];
        boolean normalize = config.normalizeTopK();
        float[] scored = scores, selected = masked;
        if (scoreFirst) {
            gates = scores;
            Parallel.forRange(n, TOKENS_PER_TASK, (from, to) -> {
                for (int t = from; t < to; t++) {
                    float z = 0;
                    for (int j = 0; j < setSize[t]; j++) {
                        z += scored[t * e + weightSet[t * k + j]];
                    }
                    denominator[t] = normalize ? z : 1f;
                }
            });
        } else {
            float[] softmaxed = gates = new float[n * e];
            Parallel.forRange(n, TOKENS_PER_TASK, (from, to) -> {
                for (int t = from; t < to; t++) {
                    int size = setSize[t];
                    if (size == 0) {
                        continue;
                    }
                    float[] logits = new float[size];
                    for (int j = 0; j < size; j++) {
                        logits[j] = selected[t * e + weightSet[t * k + j]];
                    }
                    float[] q = RouterMath.softmax(logits, 1, size);
                    for (int j = 0; j < size; j++) {
                        softmaxed[t * e + weightSet[t * k + j]] = q[j];
                    }
                    denominator[t] = 1f;
                }
            });
        }
        float[] kept = new float[n * e];
        for (int t = 0; t < n; t++) {
            float d = denominator[t];
            for (int j = 0; j < setSize[t]; j++) {
                int at = t * e + weightSet[t * k + j];
                kept[at] = d > 0 ? c * gates[at] / d : 0f;
            }
        }
        float[] w = new float[count];
        for (int i = 0; i < w.length; i++) {
            w[i] = kept[servedToken[i] * e + servedExpert[i]];
        }
        r.gates = gates;
        r.topKGates = kept;
        r.choices = choices;
        r.dispatch = Dispatch.group(n, e, count, servedToken, servedExpert, w);
        r.requested = requested;
        r.dropped = dropped;
        r.rerouted = rerouted;
        r.trace = new Trace(input, jitter, pre, selection, scores, weightSet, setSize, adapterRank);
    }

    /** The token's largest router probability under the selection logits: its batch-priority score. */
    private float topProbability(float[] scores, float[] selection, int t, int e) {
        if (scores != null) {
            float best = 0;
            for (int i = t * e; i < t * e + e; i++) {
                best = Math.max(best, scores[i]);
            }
            return best;
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = t * e; i < t * e + e; i++) {
            max = Math.max(max, selection[i]);
        }
        double sum = 0;
        for (int i = t * e; i < t * e + e; i++) {
            sum += Math.exp(selection[i] - max);
        }
        return (float) (1 / sum);
    }

    /**
     * Keeps each token's experts in its best groups only. A group scores the sum of its best
     * {@code scoredPerGroup} keys; excluded experts get -∞ so they are never chosen (transformers fills 0, which
     * is the same whenever the kept scores are positive, as sigmoid scores with a small correction bias are).
     */
    private void maskGroups(float[] key, int n, int e) {
        GroupLimit g = config.groupLimit();
        int groups = g.groups(), per = e / groups;
        float[] groupScore = new float[groups];
        int[] top = new int[Math.max(g.scoredPerGroup(), g.topGroups())];
        boolean[] keep = new boolean[groups];
        for (int t = 0; t < n; t++) {
            for (int gi = 0; gi < groups; gi++) {
                int from = t * e + gi * per;
                RouterMath.topK(key, from, per, g.scoredPerGroup(), top, 0);
                // a masked expert (−∞) does not count; a group of masked experts only is never chosen
                float s = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < g.scoredPerGroup() && top[j] >= 0; j++) {
                    s = j == 0 ? key[from + top[j]] : s + key[from + top[j]];
                }
                groupScore[gi] = s;
            }
            RouterMath.topK(groupScore, 0, groups, g.topGroups(), top, 0);
            java.util.Arrays.fill(keep, false);
            for (int j = 0; j < g.topGroups() && top[j] >= 0; j++) {
                keep[top[j]] = true;
            }
            for (int gi = 0; gi < groups; gi++) {
                if (!keep[gi]) {
                    java.util.Arrays.fill(key, t * e + gi * per, t * e + (gi + 1) * per, Float.NEGATIVE_INFINITY);
                }
            }
        }
    }

    @Override
    public void backward(Routing r, Tensor x, RouterGrads grads, Tensor dx) {
        if (!(r.trace instanceof Trace tr) || tr.routerInput() == null) {
            throw new IllegalStateException("no backward for a routing made by routeLogits");
        }
        int n = r.tokens, e = r.experts, k = r.k;
        float c = (float) config.routedScalingFactor();
        float[] dSelection = grads.hasNoisyLogits() ? grads.noisyLogits().clone() : new float[n * e];
        float[] dWeights = grads.hasWeights() ? grads.weights() : null;
        float[] dGates = grads.hasGates() ? grads.gates() : null;
        float[] ds = new float[n * e];
        if (dGates != null) {
            System.arraycopy(dGates, 0, ds, 0, ds.length);
        }
        if (config.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K) {
            float[] s = tr.scores();
            if (dWeights != null) {
                for (int t = 0; t < n; t++) {
                    addWeightGradient(t, e, k, c, s, dWeights, tr, ds);
                }
            }
            RouterMath.scoresBackward(config.scoring(), s, ds, n, e, dSelection);
        } else {
            float[] q = r.gates;
            for (int t = 0; t < n; t++) {
                // w = c·q on the weight set and q = softmax over the set: ds = dGates + c·dW, then softmax backward.
                float dot = 0;
                for (int j = 0; j < tr.weightSetSize()[t]; j++) {
                    int i = t * e + tr.weightSet()[t * k + j];
                    if (dWeights != null) {
                        ds[i] += c * dWeights[i];
                    }
                    dot += ds[i] * q[i];
                }
                for (int j = 0; j < tr.weightSetSize()[t]; j++) {
                    int i = t * e + tr.weightSet()[t * k + j];
                    dSelection[i] += q[i] * (ds[i] - dot);
                }
            }
        }
        float[] dLogits = grads.hasLogits() ? grads.logits().clone() : new float[n * e];
        for (int i = 0; i < dLogits.length; i++) {
            dLogits[i] += dSelection[i];
        }
        if (r.noisyLogits != null && noiseWeight != null) {
            // noisy = l + n·softplus(z): dstd = dnoisy·n (+ the load loss's direct term), dz = dstd·sigmoid(z).
            float[] dz = grads.hasNoiseStd() ? grads.noiseStd().clone() : new float[n * e];
            for (int i = 0; i < dz.length; i++) {
                dz[i] = (dz[i] + dSelection[i] * r.noise[i]) * RouterMath.sigmoid(tr.noisePreActivation()[i]);
            }
            Linear.backward(dz, x, noiseWeight, null, dx);
        }
        if (tr.jitter() == null) {
            Linear.backward(dLogits, tr.routerInput(), weight, bias, adapter, tr.adapterRank(), dx);
        } else {
            Tensor dInput = Tensor.zeros(n, x.cols());
            Linear.backward(dLogits, tr.routerInput(), weight, bias, adapter, tr.adapterRank(), dInput);
            float[] d = dInput.toFloatArray();
            for (int i = 0; i < d.length; i++) {
                dx.setFloat(i, dx.getFloat(i) + d[i] * tr.jitter()[i]);
            }
        }
    }

    /** Score-then-top-k: w = c·s/Z over the weight set (Z = 1 without renormalisation) → ds. */
    private void addWeightGradient(int t, int e, int k, float c, float[] s, float[] dWeights, Trace tr, float[] ds) {
        int size = tr.weightSetSize()[t];
        if (!config.normalizeTopK()) {
            for (int j = 0; j < size; j++) {
                int i = t * e + tr.weightSet()[t * k + j];
                ds[i] += c * dWeights[i];
            }
            return;
        }
        float z = 0, acc = 0;
        for (int j = 0; j < size; j++) {
            int i = t * e + tr.weightSet()[t * k + j];
            z += s[i];
            acc += dWeights[i] * s[i];
        }
        if (z <= 0) {
            return;
        }
        for (int j = 0; j < size; j++) {
            int i = t * e + tr.weightSet()[t * k + j];
            ds[i] += c * (dWeights[i] / z - acc / (z * z));
        }
    }

    @Override
    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>();
        out.add(weight);
        if (bias != null) {
            out.add(bias);
        }
        if (noiseWeight != null) {
            out.add(noiseWeight);
        }
        if (adapter != null) {
            out.add((Parameter) adapter.a());
            out.add((Parameter) adapter.b());
        }
        return out;
    }

    @Override
    public Map<String, Tensor> buffers() {
        var out = new LinkedHashMap<String, Tensor>();
        if (selectionBias != null) {
            out.put("router.selection_bias", selectionBias);
        }
        return out;
    }

    /** The selection-only bias ([experts], F32), or null: what the {@code BiasBalancer} moves. */
    /** The LoRA adapter on the router linear, or null. */
    public Lora adapter() {
        return adapter;
    }

    public Tensor selectionBias() {
        return selectionBias;
    }
}
