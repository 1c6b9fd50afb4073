package dev.moe4j.moe;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.expert.ExpertAdapters;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.expert.ExpertWeights;
import dev.moe4j.moe.expert.Experts;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.loss.AuxLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.PolicyRows;
import dev.moe4j.moe.router.Router;
import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RouterMath;
import dev.moe4j.moe.router.Routers;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.SoftDispatch;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.moe.stats.RoutingStats;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A Mixture-of-Experts feed-forward layer: router → dispatch (tokens permuted into expert order) → experts (a
 * grouped matmul) → combine (outputs scattered back to their tokens, times the gate weights), plus an always-on
 * shared expert when configured. Every routing strategy of {@link MoeConfig} runs through this one path; Soft
 * MoE's dispatch and combine are dense mixes instead of a permutation.
 *
 * <p>Forward returns the output, the auxiliary losses, the {@link RoutingStats} and, when training, a context
 * from which {@link #backward} computes dL/dx and accumulates every parameter's gradient, the auxiliary losses'
 * gradients (times their coefficients) included. A token that no expert takes gets zero from the routed experts:
 * the residual connection around the layer carries it.
 */
public final class MoeLayer {
    private final MoeConfig config;
    private final Router router;
    private final Experts experts;
    private final Experts shared;
    private final Parameter sharedGate;
    private SplittableRandom random;

    private MoeLayer(MoeConfig config, Router router, Experts experts, Experts shared, Parameter sharedGate) {
        this.config = config;
        this.router = router;
        this.experts = experts;
        this.shared = shared;
        this.sharedGate = sharedGate;
        this.random = new SplittableRandom(config.seed() ^ 0x5DEECE66DL);
    }

    /** A layer with freshly initialised F32 weights for training, drawn from {@code config.seed()}. */
    public static MoeLayer initialize(MoeConfig config) {
        var random = new SplittableRandom(config.seed());
        Router router = Routers.initialize(config, random);
        var routed = StackedExpertWeights.initialize("experts.", config.experts(), config.hidden(),
                config.intermediate(), config.ffn().gated(), config.expertBias(), random);
        ExpertWeights sharedWeights = null;
        Tensor gate = null;
        if (config.sharedIntermediate() > 0) {
            sharedWeights = StackedExpertWeights.initialize("shared_experts.", 1, config.hidden(),
                    config.sharedIntermediate(), config.ffn().gated(), false, random);
            if (config.sharedGate()) {
                gate = Tensor.zeros(1, config.hidden());
                double std = 1 / Math.sqrt(config.hidden());
                for (int i = 0; i < config.hidden(); i++) {
                    gate.setFloat(i, (float) (random.nextGaussian() * std));
                }
            }
        }
        return of(config, router, routed, sharedWeights, gate);
    }

    /**
     * A layer over given weights (for example views into a memory-mapped checkpoint).
     *
     * @param shared     the shared expert as one expert, or null
     * @param sharedGate [1, hidden] the shared expert's gate (Qwen2-MoE), or null
     */
    public static MoeLayer of(MoeConfig config, Router router, ExpertWeights experts, ExpertWeights shared,
                              Tensor sharedGate) {
        return of(config, router, experts, shared, sharedGate, null, null);
    }

    /**
     * As {@link #of(MoeConfig, Router, ExpertWeights, ExpertWeights, Tensor)}, with LoRA adapters on the routed and
     * the shared experts (either may be null; an adapter on the router is the router's own).
     */
    public static MoeLayer of(MoeConfig config, Router router, ExpertWeights experts, ExpertWeights shared,
                              Tensor sharedGate, ExpertAdapters expertAdapters, ExpertAdapters sharedAdapters) {
        check(experts.count() == config.experts() && experts.hidden() == config.hidden()
                        && experts.intermediate() == config.intermediate(),
                "experts: expected " + config.experts() + " experts of [" + config.hidden() + " → "
                        + config.intermediate() + "], got " + experts.count() + " of [" + experts.hidden() + " → "
                        + experts.intermediate() + "]");
        check((shared != null) == (config.sharedIntermediate() > 0),
                "shared expert: config says intermediate " + config.sharedIntermediate() + " but weights were "
                        + (shared == null ? "not " : "") + "given");
        if (shared != null) {
            check(shared.count() == 1 && shared.hidden() == config.hidden()
                            && shared.intermediate() == config.sharedIntermediate(),
                    "shared expert: expected one expert of [" + config.hidden() + " → " + config.sharedIntermediate() + "]");
        }
        check((sharedGate != null) == config.sharedGate(), "shared expert gate: config says " + config.sharedGate()
                + " but a gate was " + (sharedGate == null ? "not " : "") + "given");
        if (sharedGate != null) {
            check(sharedGate.hasShape(1, config.hidden()), "shared expert gate: expected [1, " + config.hidden()
                    + "], got " + sharedGate);
        }
        check(shared != null || sharedAdapters == null, "adapters on shared experts the layer does not have");
        return new MoeLayer(config, router, new Experts(config.ffn(), experts, expertAdapters),
                shared == null ? null : new Experts(config.ffn(), shared, sharedAdapters),
                sharedGate == null ? null : new Parameter("shared_expert_gate.weight", sharedGate));
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new BadInputException("moe layer: " + message);
        }
    }

    public MoeConfig config() {
        return config;
    }

    public Router router() {
        return router;
    }

    /**
     * Every parameter, frozen ones included: the router's (with its adapter), the routed experts' and the shared
     * expert's (stacked weights, and adapters) and the shared expert's gate.
     */
    public List<Parameter> parameters() {
        var out = new ArrayList<>(router.parameters());
        if (experts.weights() instanceof StackedExpertWeights s) {
            out.addAll(s.parameters());
        }
        if (experts.adapters() != null) {
            out.addAll(experts.adapters().parameters());
        }
        if (shared != null && shared.weights() instanceof StackedExpertWeights s) {
            out.addAll(s.parameters());
        }
        if (shared != null && shared.adapters() != null) {
            out.addAll(shared.adapters().parameters());
        }
        if (sharedGate != null) {
            out.add(sharedGate);
        }
        return out;
    }

    /** The LoRA adapters' parameters: on the router, the routed experts and the shared expert. */
    public List<Parameter> adapterParameters() {
        var out = new ArrayList<Parameter>();
        if (router instanceof TopKRouter r && r.adapter() != null) {
            out.add((Parameter) r.adapter().a());
            out.add((Parameter) r.adapter().b());
        }
        if (experts.adapters() != null) {
            out.addAll(experts.adapters().parameters());
        }
        if (shared != null && shared.adapters() != null) {
            out.addAll(shared.adapters().parameters());
        }
        return out;
    }

    /**
     * Freezes the layer's own weights (router, experts, shared expert and its gate) so that backward passes only
     * dL/dx through them and trains nothing but its adapters: the MoE layer of a model fine-tuned with LoRA.
     */
    public MoeLayer freezeBase() {
        var adapters = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<Parameter, Boolean>());
        adapters.addAll(adapterParameters());
        parameters().stream().filter(p -> !adapters.contains(p)).forEach(Parameter::freeze);
        return this;
    }

    /**
     * Draws the router noise of the next forward passes from a generator seeded by {@code seed} alone (a trainer
     * derives it from its seed, step, micro-step and the layer), so that a resumed run adds the same noise as an
     * uninterrupted one without saving a generator's state.
     */
    public void reseedNoise(long seed) {
        random = new SplittableRandom(seed);
    }

    /** Non-trained state saved with the weights (selection bias, expert-choice thresholds). */
    public Map<String, Tensor> buffers() {
        return new LinkedHashMap<>(router.buffers());
    }

    /** The forward pass over x [tokens, hidden] taken as one sequence. */
    public MoeResult forward(Tensor x, Mode mode) {
        return forward(x, x.rows(), mode);
    }

    /**
     * The forward pass over x [tokens, hidden] holding tokens / sequenceLength sequences of sequenceLength tokens
     * (the sequence-wise balance loss needs the boundaries).
     */
    public MoeResult forward(Tensor x, int sequenceLength, Mode mode) {
        return forward(x, sequenceLength, mode, null);
    }

    /**
     * The inference pass with the rows routed by {@code policies} (null, or every row trained: as configured). A
     * policy changes which experts a token takes; only those experts' weights are read.
     */
    public MoeResult forward(Tensor x, int sequenceLength, Mode mode, PolicyRows policies) {
        Backend b = Backend.of(x);
        if (x.rank() != 2 || x.cols() != config.hidden()
                || (x.dtype() != b.activationType() && x.dtype() != DType.F32)) {
            throw new IllegalArgumentException("MoE input must be F32 or " + b.activationType() + " [tokens, "
                    + config.hidden() + "], got " + x);
        }
        if (!b.device().isHost()) {
            requireDeviceSupport(b);
        }
        int n = x.rows(), h = config.hidden();
        boolean policed = policies != null && !policies.allTrained();
        Tensor out = b.activations(n, h);
        Routing routing = null;
        TopKRouter.DeviceRouting routed = mode == Mode.INFERENCE && !policed ? routeOnDevice(x) : null;
        if (routed != null) {
            Tensor[][] all = allExperts();
            if (b.routedExperts(out, x, routed.experts(), routed.weights(), all[0], all[1])) {
                addShared(b, x, out, Mode.INFERENCE);
                return MoeResult.routedOnDevice(out, () -> {
                    Routing r = routed.onHost().get();
                    r.sequenceLength(sequenceLength);
                    return r;
                }, r -> losses(r, Mode.INFERENCE, false));
            }
            routing = routed.onHost().get(); // the backend's experts refused (F32 precision): the grouped products
        } else if (!policed) {
            routing = router.route(x, mode, random);
        } else if (router instanceof TopKRouter topK) {
            routing = topK.route(x, mode, random, policies);
        } else {
            throw new BadInputException("routing policies change token-choice routing; this layer routes by "
                    + config.router().name().toLowerCase(java.util.Locale.ROOT).replace('_', ' '));
        }
        routing.sequenceLength(sequenceLength);
        Experts.Trace trace = null;
        if (routing.soft() == null) {
            Dispatch d = routing.dispatch();
            if (mode == Mode.TRAINING || !smallBatch(b, out, x, d)) {
                Tensor permuted = b.activations(d.rows(), h);
                b.gatherRows(permuted, x, d.token());
                trace = experts.forward(permuted, d.offsets());
                b.scatterAddRows(out, trace.output(), d.token(), d.weight());
            }
        } else {
            SoftDispatch s = routing.soft();
            Tensor dispatch = Tensor.of(s.dispatch(), n, s.slots()), combine = Tensor.of(s.combine(), n, s.slots());
            // slotInput = dispatchᵀ · x (the product backwardWeight computes) and out = combine · slotOutput.
            Tensor slotInput = Tensor.zeros(s.slots(), h);
            MatMul.backwardWeight(slotInput, dispatch, x, false);
            trace = experts.forward(slotInput, slotOffsets(s));
            MatMul.multiply(out, combine, trace.output());
        }
        SharedPass shared = addShared(b, x, out, mode);
        var losses = losses(routing, mode, policed);
        if (routing.predictorFit() != null) {
            losses.add(new AuxLoss(PREDICTOR_LOSS, config.predictor().orElseThrow().coefficient(),
                    routing.predictorFit().loss()));
        }
        MoeContext context = mode == Mode.TRAINING
                ? new MoeContext(this, x, routing, trace, shared.trace(), shared.gate()) : null;
        Tensor expertOutputs = trace != null && routing.soft() == null ? trace.output() : null;
        return new MoeResult(out, List.copyOf(losses), context, routing, expertOutputs);
    }

    /**
     * A decoding step's routing left on its device, where the experts' one-pass path will read it: null unless the
     * router is token choice, the step's rows are few enough for that path and the experts suit it, and the router
     * and the backend can route there (see {@link TopKRouter#routeOnDevice}).
     */
    private TopKRouter.DeviceRouting routeOnDevice(Tensor x) {
        if (Backend.of(x).device().isHost() || !(router instanceof TopKRouter topK)
                || x.rows() * config.topK() > SMALL_BATCH_ROWS || !onePassExperts() || allExperts() == null) {
            return null;
        }
        return topK.routeOnDevice(x);
    }

    /**
     * Every routed expert's gate+up [2I, H] and down [H, I] weights (two arrays by expert), or null when gate and up
     * are stored apart. Weights do not change place, so the arrays are made once.
     */
    private Tensor[][] allExperts() {
        if (allExperts == null) {
            ExpertWeights w = experts.weights();
            int e = config.experts();
            Tensor[] gateUp = new Tensor[e], down = new Tensor[e];
            for (int i = 0; i < e; i++) {
                gateUp[i] = w.gateUp(i);
                down[i] = w.down(i);
                if (gateUp[i] == null) {
                    return null;
                }
            }
            allExperts = new Tensor[][] {gateUp, down};
        }
        return allExperts;
    }

    private Tensor[][] allExperts;

    /** The shared expert's pass: its trace and, with a gate, each token's gate value (what backward needs). */
    private record SharedPass(Experts.Trace trace, float[] gate) {
    }

    /**
     * Adds the shared expert's output into out, times its sigmoid gate where it has one. A training pass keeps the
     * gate on the host for backward; an inference pass leaves it where the gate's logits are.
     */
    private SharedPass addShared(Backend b, Tensor x, Tensor out, Mode mode) {
        if (shared == null) {
            return new SharedPass(null, null);
        }
        Experts.Trace trace = shared.forward(x, new int[] {0, x.rows()});
        Tensor y = trace.output();
        float[] gate = null;
        if (sharedGate == null) {
            b.addInPlace(out, y);
        } else if (mode == Mode.INFERENCE) {
            Tensor z = b.empty(DType.F32, x.rows(), 1);
            b.matmul(z, x, sharedGate.value());
            b.addSigmoidGatedRows(out, y, z);
        } else {
            gate = product(b, x, sharedGate.value());
            for (int t = 0; t < gate.length; t++) {
                gate[t] = RouterMath.sigmoid(gate[t]);
            }
            b.addScaledRows(out, y, gate);
        }
        return new SharedPass(trace, gate);
    }

    /** The configured auxiliary losses of a pass's routing (a mutable list). */
    private List<AuxLoss> losses(Routing routing, Mode mode, boolean policed) {
        var losses = new ArrayList<AuxLoss>();
        for (LossTerm term : config.losses()) {
            // The load loss is an expectation over the training noise, which an inference pass does not draw.
            if (mode == Mode.INFERENCE && term.loss() instanceof LoadLoss) {
                continue;
            }
            // Losses are the trained routing's objectives; a policy's tokens may choose fewer or more than k.
            if (policed) {
                continue;
            }
            losses.add(new AuxLoss(term.loss().name(), term.coefficient(), term.loss().value(routing)));
        }
        return losses;
    }

    /** x [n, h] · w [m, h]ᵀ as a host array (a gate's logits: small). */
    private static float[] product(Backend b, Tensor x, Tensor w) {
        Tensor y = b.zeros(DType.F32, x.rows(), w.rows());
        b.matmul(y, x, w);
        return b.toHost(y).toFloatArray();
    }

    /** Whether the routed experts are of the kind the one-pass decoding path computes: SwiGLU, no biases or adapters. */
    private boolean onePassExperts() {
        return !config.expertBias() && experts.adapters() == null
                && config.ffn() instanceof ExpertFfn.Gated g && g.glu().equals(GluParams.swiglu())
                && !experts.weights().transposed();
    }

    /**
     * Decoding on a backend with a one-pass path for a few routed rows through SwiGLU experts (no permutation, one
     * read of each chosen expert): false where it does not apply, and the grouped products run instead.
     */
    private boolean smallBatch(Backend b, Tensor out, Tensor x, Dispatch d) {
        if (d.rows() == 0 || d.rows() > SMALL_BATCH_ROWS || !onePassExperts()) {
            return false;
        }
        ExpertWeights w = experts.weights();
        int e = config.experts();
        Tensor[] gateUp = new Tensor[e], down = new Tensor[e];
        int[] expertOf = d.expertOfRows();
        for (int r = 0; r < d.rows(); r++) {
            int ex = expertOf[r];
            if (gateUp[ex] == null) {
                gateUp[ex] = w.gateUp(ex);
                down[ex] = w.down(ex);
                if (gateUp[ex] == null) {
                    return false; // gate and up stored apart
                }
            }
        }
        return b.smallBatchExperts(out, x, d.token(), expertOf, d.weight(), gateUp, down);
    }

    /** The name of an expert-choice predictor's binary cross-entropy among a pass's auxiliary losses. */
    public static final String PREDICTOR_LOSS = "predictor";

    /** Up to this many routed rows (tokens × k), inference may take a backend's one-pass expert path. */
    static final int SMALL_BATCH_ROWS = 64;

    /**
     * The options of {@code config} that the layer cannot run on a device other than the host: they need the
     * input in host memory (router jitter multiplies it; Soft MoE mixes it densely). Empty when the layer runs.
     */
    public static List<String> unsupportedOnDevice(MoeConfig config) {
        var out = new ArrayList<String>();
        if (config.router() == RouterKind.SOFT) {
            out.add("the Soft MoE router");
        }
        if (config.noise().kind() == Noise.Kind.JITTER) {
            out.add("router jitter noise");
        }
        return out;
    }

    private void requireDeviceSupport(Backend b) {
        List<String> missing = unsupportedOnDevice(config);
        if (!missing.isEmpty()) {
            throw new BadInputException("the MoE layer cannot run " + String.join(" or ", missing) + " on "
                    + b.device().name() + " yet; run it on the CPU (--device cpu)");
        }
    }

    /** The layer's output as a value of a {@link Graph}, with the pass it came from. */
    public record GraphOutput(Var output, MoeResult result) {
    }

    /**
     * The layer as one coarse operation of a {@link Graph}: trains when the graph does, and records a backward
     * step that adds dL/dx into x's gradient and accumulates every parameter's gradient. The auxiliary losses'
     * gradients are part of that step, so the caller adds {@code result().auxLoss()} to the loss it reports but
     * does not add it to the graph again.
     */
    public GraphOutput forward(Graph graph, Var x, int sequenceLength) {
        return forward(graph, x, sequenceLength, null);
    }

    /** {@link #forward(Graph, Var, int)} with the rows routed by {@code policies} (inference graphs only). */
    public GraphOutput forward(Graph graph, Var x, int sequenceLength, PolicyRows policies) {
        MoeResult r = forward(x.value(), sequenceLength, graph.isTraining() ? Mode.TRAINING : Mode.INFERENCE, policies);
        List<Parameter> params = parameters();
        Var[] inputs = new Var[params.size() + 1];
        inputs[0] = x;
        for (int i = 0; i < params.size(); i++) {
            inputs[i + 1] = params.get(i);
        }
        Var out = graph.result(r.output(), inputs);
        graph.onBackward(out, () -> {
            Tensor dx = backward(r.context(), out.grad());
            if (x.requiresGrad()) {
                Backend.of(dx).addInPlace(x.grad(), dx);
            }
        });
        return new GraphOutput(out, r);
    }

    private int[] slotOffsets(SoftDispatch s) {
        int[] offsets = new int[config.experts() + 1];
        for (int e = 0; e <= config.experts(); e++) {
            offsets[e] = e * s.slotsPerExpert();
        }
        return offsets;
    }

    /**
     * dL/dx [tokens, hidden] given dL/d output, for the loss L = (downstream loss) + Σ coefficient · aux loss;
     * adds every parameter's gradient into {@link Parameter#grad()}.
     */
    public Tensor backward(MoeContext context, Tensor dOut) {
        if (context == null || context.layer != this) {
            throw new IllegalStateException("backward needs the context of this layer's training forward pass");
        }
        Tensor x = context.input;
        Routing routing = context.routing;
        int n = x.rows(), h = config.hidden(), e = config.experts();
        Backend b = Backend.of(x, dOut);
        Tensor dx = b.zeros(DType.F32, n, h);
        RouterGrads grads;
        if (routing.soft() == null) {
            Dispatch d = routing.dispatch();
            grads = new RouterGrads(n, e);
            float[] dWeights = grads.weights();
            Tensor y = context.experts.output();
            // dL/dy_r = w_r · dOut[token_r]; dL/dw_r = ⟨dOut[token_r], y_r⟩. The experts' gradients keep dOut's
            // precision (F32 from a graph; a benchmark may hand BF16).
            Tensor dy = b.empty(dOut.dtype(), d.rows(), h);
            float[] rowDots = new float[d.rows()];
            b.combineBackward(dy, rowDots, dOut, y, d.token(), d.weight());
            int[] expertOf = d.expertOfRows();
            for (int r = 0; r < d.rows(); r++) {
                dWeights[d.token()[r] * e + expertOf[r]] = rowDots[r];
            }
            Tensor dPermuted = experts.backward(context.experts, dy);
            b.scatterAddRows(dx, dPermuted, d.token(), null);
        } else {
            SoftDispatch s = routing.soft();
            grads = new RouterGrads(n, s.slots());
            Tensor dispatch = Tensor.of(s.dispatch(), n, s.slots()), combine = Tensor.of(s.combine(), n, s.slots());
            Tensor ySlots = context.experts.output();
            Tensor dySlots = Tensor.zeros(s.slots(), h);
            MatMul.backwardWeight(dySlots, combine, dOut, false);
            MatMul.forward(Tensor.of(grads.combine(), n, s.slots()), dOut, ySlots);
            Tensor dSlotInput = experts.backward(context.experts, dySlots);
            MatMul.forward(Tensor.of(grads.dispatch(), n, s.slots()), x, dSlotInput);
            MatMul.backwardInput(dx, dispatch, dSlotInput, true);
        }
        for (LossTerm term : config.losses()) {
            term.loss().backward(routing, (float) term.coefficient(), grads);
        }
        if (context.routerLogitGradient != null) {
            if (routing.soft() != null) {
                throw new IllegalStateException("Soft MoE has no router logits over experts to take a gradient");
            }
            float[] dLogits = grads.logits();
            for (int i = 0; i < dLogits.length; i++) {
                dLogits[i] += context.routerLogitGradient[i];
            }
        }
        router.backward(routing, x, grads, dx);
        if (shared != null) {
            sharedBackward(context, dOut, dx);
        }
        return dx;
    }

    /** out += g_t · shared(x)_t with g_t = σ(x_t · w): the shared expert's and its gate's gradients. */
    private void sharedBackward(MoeContext context, Tensor dOut, Tensor dx) {
        int n = dOut.rows();
        Backend b = Backend.of(dOut, dx);
        Tensor dShared = dOut;
        if (sharedGate != null) {
            float[] g = context.sharedGate;
            Tensor y = context.shared.output();
            dShared = b.copyOf(dOut);
            float[] dz = new float[n];
            b.rowDots(dz, dOut, y);
            for (int t = 0; t < n; t++) {
                dz[t] = dz[t] * g[t] * (1 - g[t]);
            }
            b.scaleRows(dShared, g);
            Tensor dzT = b.upload(Tensor.of(dz, n, 1), DType.F32);
            if (sharedGate.requiresGrad()) {
                b.matmulBackwardWeight(sharedGate.grad(), dzT, context.input, true);
            }
            b.matmulBackwardInput(dx, dzT, sharedGate.value(), true);
        }
        b.addInPlace(dx, shared.backward(context.shared, dShared));
    }
}
