package dev.moe4j.model.transformer;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.expert.ExpertAdapters;
import dev.moe4j.moe.expert.ExpertLora;
import dev.moe4j.moe.expert.ExpertWeights;
import dev.moe4j.moe.expert.SeparateExpertWeights;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.expert.TransposedExpertWeights;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.ExpertChoicePredictor;
import dev.moe4j.moe.router.ExpertChoiceRouter;
import dev.moe4j.moe.router.PredictorOptions;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.PolicyRows;
import dev.moe4j.moe.router.SoftMoeRouter;
import dev.moe4j.moe.router.Router;
import dev.moe4j.moe.router.TopKRouter;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The feed-forward of an MoE layer: the moe module's {@link MoeLayer}, over weights from a {@link WeightSource}
 * (memory-mapped checkpoint tensors, used in place) or freshly initialised for training.
 */
final class MoeBlock {
    private final MoeLayer layer;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    /** Whether any weight the source gave takes a gradient; if none does, the layer is frozen (LoRA fine-tuning). */
    private boolean trainable;

    MoeBlock(MoeConfig config, int index, String prefix, WeightSource w) {
        if (w instanceof InitialWeights initial) {
            // Every layer draws its own weights: the seed is the only field in which the layers' configs differ.
            this.layer = MoeLayer.initialize(config.toBuilder().seed(initial.seedFor(index)).build());
            layer.parameters().forEach(p -> tensors.put(prefix + p.name(), p.value()));
            layer.buffers().forEach((name, t) -> tensors.put(prefix + name, t));
        } else {
            MoeLayer built = MoeLayer.of(config, router(config, prefix, w), experts(config, prefix + "experts.", w),
                    shared(config, prefix + "shared_experts.", w),
                    config.sharedGate() ? get(w, prefix + "shared_expert_gate.weight", 1, config.hidden()) : null,
                    adapters(config.experts(), config.intermediate(), config.hidden(), config.ffn().gated(), prefix,
                            "experts.", w),
                    config.sharedIntermediate() == 0 ? null : adapters(1, config.sharedIntermediate(), config.hidden(),
                            config.ffn().gated(), prefix, "shared_experts.", w));
            this.layer = trainable ? built : built.freezeBase();
        }
    }

    MoeLayer layer() {
        return layer;
    }

    /** The layer's tensors by moe4j's names, as a checkpoint writer saves them. */
    Map<String, Tensor> tensors() {
        return tensors;
    }

    MoeLayer.GraphOutput forward(Graph g, Var x, int sequenceLength, PolicyRows policies) {
        return layer.forward(g, x, sequenceLength, policies);
    }

    private Tensor get(WeightSource w, String name, int... shape) {
        Var v = w.weight(name, shape);
        trainable |= v.requiresGrad();
        tensors.put(name, v.value());
        return v.value();
    }

    /**
     * The source's adapters on one group of experts ({@code part} is "experts." or "shared_experts."), as parameters
     * named within the layer, or null when it has none there.
     */
    private static ExpertAdapters adapters(int experts, int inter, int hidden, boolean gated, String prefix,
                                           String part, WeightSource w) {
        String at = prefix + part;
        ExpertLora gateUp = named(w.expertAdapter(at + "gate_up_proj", experts, gated ? 2 * inter : inter, hidden),
                part + "gate_up_proj");
        ExpertLora gate = gated ? named(w.expertAdapter(at + "gate_proj", experts, inter, hidden), part + "gate_proj")
                : null;
        ExpertLora up = gated ? named(w.expertAdapter(at + "up_proj", experts, inter, hidden), part + "up_proj") : null;
        ExpertLora down = named(w.expertAdapter(at + "down_proj", experts, hidden, inter), part + "down_proj");
        if (gateUp == null && gate == null && up == null && down == null) {
            return null;
        }
        return new ExpertAdapters(gateUp, gate, up, down);
    }

    /** The adapter as parameters named {@code name.lora_a} and {@code name.lora_b}, relative to the layer. */
    private static ExpertLora named(ExpertLora l, String name) {
        return l == null ? null : new ExpertLora(new Parameter(name + ".lora_a", l.a().value()),
                new Parameter(name + ".lora_b", l.b().value()), l.scale());
    }

    private Router router(MoeConfig c, String prefix, WeightSource w) {
        int e = c.experts(), h = c.hidden();
        Lora adapter = w.adapter(prefix + "router.weight", e, h);
        if (adapter != null && c.router() != RouterKind.TOP_K && c.router() != RouterKind.DENSE) {
            throw new BadInputException(prefix + "router: LoRA on the router needs a top-k router, not "
                    + c.router().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'));
        }
        if (c.router() == RouterKind.SOFT) {
            // Soft MoE routes by its slot parameters (and a learned scale), not by a router linear.
            return new SoftMoeRouter(c, get(w, prefix + "router.mu", e * c.slotsPerExpert(), h),
                    c.softNormalize() ? get(w, prefix + "router.scale", 1) : null);
        }
        Tensor weight = get(w, prefix + "router.weight", e, h);
        Tensor bias = c.routerBias() ? get(w, prefix + "router.bias", e) : null;
        if (c.router() == RouterKind.EXPERT_CHOICE) {
            // The running thresholds move in place while training: an F32 copy, as for the selection bias.
            Tensor thresholds = get(w, prefix + "router.expert_thresholds", e).to(DType.F32);
            tensors.put(prefix + "router.expert_thresholds", thresholds);
            return new ExpertChoiceRouter(c, weight, bias, thresholds, c.predictor().map(p -> predictor(p, c, prefix, w))
                    .orElse(null));
        }
        Tensor noise = c.noise().kind() == Noise.Kind.LEARNED_GAUSSIAN ? get(w, prefix + "router.noise_weight", e, h)
                : null;
        // The router moves the selection bias in place (aux-loss-free balancing): it gets its own F32 copy.
        Tensor selection = null;
        if (c.selectionBias()) {
            selection = get(w, prefix + "router.selection_bias", e).to(DType.F32);
            tensors.put(prefix + "router.selection_bias", selection);
        }
        return new TopKRouter(c, weight, bias, noise, selection, adapter == null ? null
                : new Lora(new Parameter("router.lora_a", adapter.a().value()),
                        new Parameter("router.lora_b", adapter.b().value()), adapter.scale()));
    }

    private ExpertChoicePredictor predictor(PredictorOptions p, MoeConfig c, String prefix, WeightSource w) {
        int e = c.experts(), h = c.hidden(), in = p.linearProbe() ? h : p.width();
        return new ExpertChoicePredictor(p, h, e,
                p.linearProbe() ? null : get(w, prefix + ExpertChoicePredictor.HIDDEN_WEIGHT, p.width(), h),
                p.linearProbe() ? null : get(w, prefix + ExpertChoicePredictor.HIDDEN_BIAS, p.width()),
                get(w, prefix + ExpertChoicePredictor.OUT_WEIGHT, e, in),
                get(w, prefix + ExpertChoicePredictor.OUT_BIAS, e));
    }

    private ExpertWeights experts(MoeConfig c, String prefix, WeightSource w) {
        int e = c.experts(), h = c.hidden(), inter = c.intermediate();
        boolean gated = c.ffn().gated();
        if (w.expertStorage() == ExpertStorage.TRANSPOSED) {
            if (!gated) {
                throw new BadInputException(prefix + ": experts stored transposed must be gated");
            }
            return new TransposedExpertWeights(get(w, prefix + "gate_up_proj", e, h, 2 * inter),
                    get(w, prefix + "down_proj", e, inter, h),
                    c.expertBias() ? get(w, prefix + "gate_up_proj_bias", e, 2 * inter) : null,
                    c.expertBias() ? get(w, prefix + "down_proj_bias", e, h) : null);
        }
        if (w.expertStorage() == ExpertStorage.STACKED) {
            int rows = gated ? 2 * inter : inter;
            // Parameter names are relative to the layer, as MoeLayer.initialize names them.
            return new StackedExpertWeights("experts.", gated, get(w, prefix + "gate_up_proj", e, rows, h),
                    get(w, prefix + "down_proj", e, h, inter),
                    c.expertBias() ? get(w, prefix + "gate_up_proj_bias", e, rows) : null,
                    c.expertBias() ? get(w, prefix + "down_proj_bias", e, h) : null);
        }
        var gate = gated ? new ArrayList<Tensor>() : null;
        var up = new ArrayList<Tensor>();
        var down = new ArrayList<Tensor>();
        List<Tensor> gateBias = gated && c.expertBias() ? new ArrayList<>() : null;
        List<Tensor> upBias = c.expertBias() ? new ArrayList<>() : null;
        List<Tensor> downBias = c.expertBias() ? new ArrayList<>() : null;
        for (int i = 0; i < e; i++) {
            String p = prefix + i + ".";
            if (gated) {
                gate.add(get(w, p + "gate_proj.weight", inter, h));
            }
            up.add(get(w, p + "up_proj.weight", inter, h));
            down.add(get(w, p + "down_proj.weight", h, inter));
            if (c.expertBias()) {
                if (gated) {
                    gateBias.add(get(w, p + "gate_proj.bias", inter));
                }
                upBias.add(get(w, p + "up_proj.bias", inter));
                downBias.add(get(w, p + "down_proj.bias", h));
            }
        }
        return new SeparateExpertWeights(gate, up, down, gateBias, upBias, downBias);
    }

    private ExpertWeights shared(MoeConfig c, String prefix, WeightSource w) {
        int s = c.sharedIntermediate(), h = c.hidden();
        if (s == 0) {
            return null;
        }
        boolean gated = c.ffn().gated();
        if (w.expertStorage() != ExpertStorage.SEPARATE) {
            return new StackedExpertWeights("shared_experts.", gated, get(w, prefix + "gate_up_proj", 1, gated ? 2 * s : s, h),
                    get(w, prefix + "down_proj", 1, h, s), null, null);
        }
        return new SeparateExpertWeights(gated ? List.of(get(w, prefix + "gate_proj.weight", s, h)) : null,
                List.of(get(w, prefix + "up_proj.weight", s, h)), List.of(get(w, prefix + "down_proj.weight", h, s)));
    }
}
