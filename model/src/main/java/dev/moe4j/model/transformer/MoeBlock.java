package dev.moe4j.model.transformer;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.expert.ExpertWeights;
import dev.moe4j.moe.expert.SeparateExpertWeights;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.expert.TransposedExpertWeights;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.ExpertChoiceRouter;
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

    MoeBlock(MoeConfig config, int index, String prefix, WeightSource w) {
        if (w instanceof InitialWeights initial) {
            // Every layer draws its own weights: the seed is the only field in which the layers' configs differ.
            this.layer = MoeLayer.initialize(config.toBuilder().seed(initial.seedFor(index)).build());
            layer.parameters().forEach(p -> tensors.put(prefix + p.name(), p.value()));
            layer.buffers().forEach((name, t) -> tensors.put(prefix + name, t));
        } else {
            this.layer = MoeLayer.of(config, router(config, prefix, w), experts(config, prefix + "experts.", w),
                    shared(config, prefix + "shared_experts.", w),
                    config.sharedGate() ? get(w, prefix + "shared_expert_gate.weight", 1, config.hidden()) : null);
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
        Tensor t = w.weight(name, shape).value();
        tensors.put(name, t);
        return t;
    }

    private Router router(MoeConfig c, String prefix, WeightSource w) {
        int e = c.experts(), h = c.hidden();
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
            return new ExpertChoiceRouter(c, weight, bias, thresholds);
        }
        Tensor noise = c.noise().kind() == Noise.Kind.LEARNED_GAUSSIAN ? get(w, prefix + "router.noise_weight", e, h)
                : null;
        // The router moves the selection bias in place (aux-loss-free balancing): it gets its own F32 copy.
        Tensor selection = null;
        if (c.selectionBias()) {
            selection = get(w, prefix + "router.selection_bias", e).to(DType.F32);
            tensors.put(prefix + "router.selection_bias", selection);
        }
        return new TopKRouter(c, weight, bias, noise, selection);
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
