package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.BalanceLoss;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.PredictorOptions;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * moe4j's own checkpoint format, for models whose options no Hugging Face family can express (expert choice, Soft
 * MoE, capacity limits, noise, other balance losses, selection bias on a Mixtral-like model, ...). The config.json
 * ({@code model_type: "moe4j"}) spells out the whole {@link ModelConfig} with its {@link MoeConfig} (under
 * {@code moe}; enum values in lower case), and the weights keep training's stacked experts:
 * {@code model.layers.N.mlp.experts.gate_up_proj} [E, 2I, H] (gate rows, then up rows) and {@code down_proj}
 * [E, H, I], the router's tensors (including its buffers: selection bias, expert-choice thresholds, Soft MoE slots;
 * and an expert-choice predictor's layers, {@code router.predictor.{hidden,out}.{weight,bias}})
 * under {@code mlp.router}. transformers does not know this format; moe4j's commands load it.
 */
public final class Moe4jFamily implements HfFamily {
    @Override
    public String modelType() {
        return ModelConfig.CUSTOM_FAMILY;
    }

    @Override
    public String architecture() {
        return "Moe4jForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int layers = c.requiredPositiveInt("num_hidden_layers");
        var attention = new AttentionConfig.Standard(heads, HfCommon.kvHeads(c, heads, OptionalInt.empty()),
                HfCommon.headDim(c, hidden, heads, OptionalInt.empty()), c.boolOr("attention_bias", false),
                c.boolOr("attention_output_bias", false), c.optionalDouble("clip_qkv", OptionalDouble.empty()),
                c.boolOr("attention_sinks", false));
        List<Integer> dense = c.intListOr("mlp_only_layers", List.of());
        List<Integer> windows = c.intListOr("sliding_windows", List.of());
        if (!windows.isEmpty() && windows.size() != layers) {
            throw c.error("sliding_windows", "must list one window per layer (" + layers + "), got " + windows.size());
        }
        if (windows.stream().anyMatch(w -> w < 0)) {
            throw c.error("sliding_windows", "must be 0 (full attention) or more, got " + windows);
        }
        var specs = new ArrayList<LayerSpec>();
        for (int i = 0; i < layers; i++) {
            specs.add(new LayerSpec(!dense.contains(i), windows.isEmpty() ? 0 : windows.get(i)));
        }
        var layout = enumOf(RopeConfig.Layout.class, c, "rope_layout", "half");
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                .rope(HfRope.read(c, 10_000.0, new RopeConfig.None(), layout))
                .norms(new NormConfig(c.doubleOr("rms_norm_eps", 1e-6), enumOf(QkNorm.class, c, "qk_norm", "none")))
                .layers(specs)
                .denseIntermediateSize(c.nonNegativeIntOr("dense_intermediate_size", 0))
                .activation(HfCommon.activation(c, "silu"))
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))
                .maxPositions(c.positiveIntOr("max_position_embeddings", 2048))
                .tokens(HfCommon.tokens(c, OptionalInt.empty(), OptionalInt.empty(), OptionalInt.empty()))
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02));
        if (specs.stream().anyMatch(LayerSpec::moe)) {
            ConfigFields m = c.object("moe").orElseThrow(() -> c.error("moe", "is required: some layers are "
                    + "mixtures of experts (only mlp_only_layers are dense)"));
            builder.moe(HfMoe.build(c, moe(m, hidden)));
        }
        return builder.build();
    }

    /**
     * The MoE layers described under {@code moe} of a moe4j config.json ({@code m}, inside the file's {@code c}),
     * for a model of width {@code hidden}: the one spelling of a {@link MoeConfig} that other moe4j model folders
     * (the vision models) share.
     */
    public static MoeConfig readMoe(ConfigFields c, ConfigFields m, int hidden) {
        return HfMoe.build(c, moe(m, hidden));
    }

    private static MoeConfig.Builder moe(ConfigFields m, int hidden) {
        GateOrder order = enumOf(GateOrder.class, m, "gate_order", "softmax_then_top_k");
        int experts = m.requiredPositiveInt("num_experts");
        var b = MoeConfig.builder(hidden, m.requiredPositiveInt("intermediate_size"), experts,
                        HfCommon.expertsPerToken(m, m.requiredPositiveInt("num_experts_per_tok"), experts, "num_experts"))
                .router(enumOf(RouterKind.class, m, "router", "top_k"))
                .scoring(enumOf(Scoring.class, m, "scoring", "softmax"))
                .gateOrder(order)
                .normalizeTopK(m.boolOr("norm_topk_prob", true))
                .routedScalingFactor(m.doubleOr("routed_scaling_factor", 1.0))
                .routerBias(m.boolOr("router_bias", false))
                .selectionBias(m.boolOr("selection_bias", false))
                .groupLimit(new GroupLimit(m.positiveIntOr("n_group", 1), m.positiveIntOr("topk_group", 1),
                        m.positiveIntOr("group_scored", 1)))
                .overflow(enumOf(Overflow.class, m, "overflow", "drop"))
                .priority(enumOf(Priority.class, m, "priority", "position"))
                .expertChoiceDecode(enumOf(ExpertChoiceDecode.class, m, "expert_choice_decode", "threshold"))
                .thresholdMomentum(m.doubleOr("threshold_momentum", 0.05))
                .predictor(m.object("expert_choice_predictor").map(p -> new PredictorOptions(
                        p.nonNegativeIntOr("width", PredictorOptions.defaults().width()),
                        p.boolOr("stop_gradient", true), p.nonNegativeIntOr("top_k", 0),
                        p.doubleOr("coefficient", PredictorOptions.defaults().coefficient()))).orElse(null))
                .slotsPerExpert(m.positiveIntOr("slots_per_expert", 1))
                .softNormalize(m.boolOr("soft_normalize", true))
                .expertBias(m.boolOr("expert_bias", false))
                .sharedExpert(m.nonNegativeIntOr("shared_intermediate_size", 0), m.boolOr("shared_gate", false))
                .seed((long) m.doubleOr("seed", 1));
        m.object("noise").ifPresent(n -> b.noise(new Noise(enumOf(Noise.Kind.class, n, "kind", "none"),
                n.doubleOr("amount", 0))));
        m.object("capacity").ifPresent(cap -> b.capacity(new Capacity(enumOf(Capacity.Kind.class, cap, "kind", "dropless"),
                cap.doubleOr("factor", 0), cap.nonNegativeIntOr("fixed", 0),
                enumOf(Capacity.Rounding.class, cap, "rounding", "ceil"), cap.positiveIntOr("multiple_of", 1),
                cap.nonNegativeIntOr("minimum", 0))));
        m.object("expert_ffn").ifPresent(f -> b.ffn(switch (f.stringOr("type", "gated")) {
            case "gated" -> new ExpertFfn.Gated(new GluParams.Gated(activation(f),
                    enumOf(GluParams.Layout.class, f, "layout", "halves")));
            case "clamped" -> new ExpertFfn.Gated(new GluParams.Clamped((float) f.doubleOr("alpha", 1.702),
                    (float) f.doubleOr("limit", 7.0), enumOf(GluParams.Layout.class, f, "layout", "halves")));
            case "plain" -> new ExpertFfn.Plain(activation(f));
            default -> throw f.error("type", "must be gated, clamped or plain");
        }));
        if (m.json().get("losses") instanceof ArrayNode losses) {
            for (int i = 0; i < losses.size(); i++) {
                if (!(losses.get(i) instanceof ObjectNode o)) {
                    throw m.error("losses", "must be a list of objects");
                }
                var l = new ConfigFields(o, m.qualified("losses[" + i + "]"));
                b.loss(loss(l, order), l.doubleOr("coefficient", 0));
            }
        }
        return b;
    }

    private static Activation activation(ConfigFields f) {
        return HfCommon.activation(new ConfigFields(Json.mapper().createObjectNode()
                .put("hidden_act", f.stringOr("activation", "silu")), f.source()), "silu");
    }

    /** A loss; a definition left out is the one of the paper whose gating the gate order is. */
    private static BalanceLoss loss(ConfigFields l, GateOrder order) {
        return switch (l.stringOr("loss", "")) {
            case "switch" -> new SwitchLoss(enumOf(SwitchLoss.Form.class, l, "form", "transformers"));
            case "importance" -> new ImportanceLoss(enumOf(ImportanceLoss.Of.class, l, "of",
                    name(ImportanceLoss.ofPaper(order).of())));
            case "load" -> new LoadLoss(enumOf(LoadLoss.Threshold.class, l, "threshold",
                    name(LoadLoss.ofPaper(order).threshold())));
            case "z" -> new RouterZLoss();
            case "sequence" -> new SequenceLoss();
            default -> throw l.error("loss", "must be one of switch, importance, load, z, sequence");
        };
    }

    private static <E extends Enum<E>> E enumOf(Class<E> type, ConfigFields c, String field, String fallback) {
        String value = c.stringOr(field, fallback);
        try {
            return Enum.valueOf(type, value.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            var names = new ArrayList<String>();
            for (E constant : type.getEnumConstants()) {
                names.add(name(constant));
            }
            throw c.error(field, "'" + value + "' is not one of " + String.join(", ", names));
        }
    }

    private static String name(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        out.put("head_dim", a.headDim());
        out.put("attention_bias", a.qkvBias());
        out.put("attention_output_bias", a.outputBias());
        if (a.clipQkv().isPresent()) {
            out.put("clip_qkv", a.clipQkv().getAsDouble());
        }
        out.put("attention_sinks", a.sinks());
        out.put("qk_norm", name(config.norms().qkNorm()));
        out.put("rms_norm_eps", config.norms().eps());
        out.put("rope_layout", name(config.rope().layout()));
        HfRope.write(config.rope(), out);
        config.denseLayerIndices().forEach(out.putArray("mlp_only_layers")::add);
        if (config.layers().stream().anyMatch(LayerSpec::isSliding)) {
            config.layers().forEach(l -> ((ArrayNode) out.withArray("sliding_windows")).add(l.slidingWindow()));
        }
        out.put("dense_intermediate_size", config.denseIntermediateSize());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("tie_word_embeddings", config.tieEmbeddings());
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        HfCommon.writeTokens(config.tokens(), out);
        HfCommon.writeDtype(config.dtype(), out);
        config.moe().ifPresent(m -> writeMoe(m, out.putObject("moe")));
        return out;
    }

    /** Writes {@code m} into {@code o} as {@link #readMoe} reads it. */
    public static void writeMoe(MoeConfig m, ObjectNode o) {
        o.put("intermediate_size", m.intermediate());
        o.put("num_experts", m.experts());
        o.put("num_experts_per_tok", m.topK());
        o.put("router", name(m.router()));
        o.put("scoring", name(m.scoring()));
        o.put("gate_order", name(m.gateOrder()));
        o.put("norm_topk_prob", m.normalizeTopK());
        o.put("routed_scaling_factor", m.routedScalingFactor());
        o.put("router_bias", m.routerBias());
        o.put("selection_bias", m.selectionBias());
        o.put("n_group", m.groupLimit().groups());
        o.put("topk_group", m.groupLimit().topGroups());
        o.put("group_scored", m.groupLimit().scoredPerGroup());
        o.putObject("noise").put("kind", name(m.noise().kind())).put("amount", m.noise().amount());
        Capacity c = m.capacity();
        o.putObject("capacity").put("kind", name(c.kind())).put("factor", c.factor()).put("fixed", c.fixed())
                .put("rounding", name(c.rounding())).put("multiple_of", c.multipleOf()).put("minimum", c.minimum());
        o.put("overflow", name(m.overflow()));
        o.put("priority", name(m.priority()));
        o.put("expert_choice_decode", name(m.expertChoiceDecode()));
        o.put("threshold_momentum", m.thresholdMomentum());
        m.predictor().ifPresent(p -> o.putObject("expert_choice_predictor").put("width", p.width())
                .put("stop_gradient", p.stopGradient()).put("top_k", p.topK()).put("coefficient", p.coefficient()));
        o.put("slots_per_expert", m.slotsPerExpert());
        o.put("soft_normalize", m.softNormalize());
        ObjectNode f = o.putObject("expert_ffn");
        switch (m.ffn()) {
            case ExpertFfn.Gated(GluParams.Gated g) -> f.put("type", "gated")
                    .put("activation", HfCommon.activationName(g.activation())).put("layout", name(g.layout()));
            case ExpertFfn.Gated(GluParams.Clamped g) -> f.put("type", "clamped").put("alpha", g.alpha())
                    .put("limit", g.limit()).put("layout", name(g.layout()));
            case ExpertFfn.Plain p -> f.put("type", "plain").put("activation", HfCommon.activationName(p.activation()));
        }
        o.put("expert_bias", m.expertBias());
        o.put("shared_intermediate_size", m.sharedIntermediate());
        o.put("shared_gate", m.sharedGate());
        ArrayNode losses = o.putArray("losses");
        for (LossTerm t : m.losses()) {
            ObjectNode l = losses.addObject().put("loss", t.loss().name());
            switch (t.loss()) {
                case SwitchLoss s -> l.put("form", name(s.form()));
                case LoadLoss s -> l.put("threshold", name(s.threshold()));
                case ImportanceLoss s -> l.put("of", name(s.of()));
                default -> { }
            }
            l.put("coefficient", t.coefficient());
        }
        o.put("seed", m.seed());
    }

    @Override
    public TensorNames tensorNames() {
        return TensorNames.builder(ExpertStorage.STACKED)
                .rule("layers.{N}.moe.router.{W}", "model.layers.{N}.mlp.router.{W}")
                .rule("layers.{N}.moe.router.predictor.{W}.weight", "model.layers.{N}.mlp.router.predictor.{W}.weight")
                .rule("layers.{N}.moe.router.predictor.{W}.bias", "model.layers.{N}.mlp.router.predictor.{W}.bias")
                .rule("layers.{N}.moe.experts.{W}", "model.layers.{N}.mlp.experts.{W}")
                .rule("layers.{N}.moe.shared_experts.{W}", "model.layers.{N}.mlp.shared_experts.{W}")
                .rule("layers.{N}.moe.shared_expert_gate.weight", "model.layers.{N}.mlp.shared_expert_gate.weight")
                .build();
    }
}
