package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.transformer.ExpertStorage;

import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Qwen2-MoE / Qwen1.5-MoE ({@code Qwen2MoeConfig}, {@code modeling_qwen2_moe.py}): routed experts of width
 * {@code moe_intermediate_size} chosen by softmax then top-k (renormalised only with {@code norm_topk_prob}), plus
 * one shared expert of width {@code shared_expert_intermediate_size} whose output is scaled by
 * sigmoid({@code shared_expert_gate}(x)); biases on q, k and v (not o); layers listed in {@code mlp_only_layers}, or
 * off the {@code decoder_sparse_step} rhythm, use a dense MLP of width {@code intermediate_size}.
 */
public final class Qwen2MoeFamily implements HfFamily {
    @Override
    public String modelType() {
        return "qwen2_moe";
    }

    @Override
    public String architecture() {
        return "Qwen2MoeForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int numLayers = c.requiredPositiveInt("num_hidden_layers");
        int experts = c.requiredPositiveInt("num_experts");                  // num_experts: 60
        var attention = new AttentionConfig.Standard(heads,
                HfCommon.kvHeads(c, heads, OptionalInt.of(16)),                // num_key_value_heads: 16
                HfCommon.headDim(c, hidden, heads, OptionalInt.empty()), // hidden_size / heads
                c.boolOr("qkv_bias", true),  // qkv_bias: True (transformers 5; always on in 4.x); o_proj has none
                false, OptionalDouble.empty(), false);
        var layers = layers(c, numLayers);
        int shared = c.nonNegativeIntOr("shared_expert_intermediate_size", 5632); // 5632; 0 = no shared expert
        var activation = HfCommon.activation(c, "silu");                   // hidden_act: "silu"
        var moe = HfMoe.build(c, HfMoe.softmaxTopK(hidden,
                c.positiveIntOr("moe_intermediate_size", 1408),                 // moe_intermediate_size: 1408
                experts,
                HfCommon.expertsPerToken(c, 4, experts, "num_experts"),        // num_experts_per_tok: 4
                c.boolOr("norm_topk_prob", false),                              // norm_topk_prob: False
                activation,
                c.doubleOr("router_aux_loss_coef", 0.001))                      // router_aux_loss_coef: 0.001
                .sharedExpert(shared, shared > 0));                              // the shared expert is gated
        boolean anyDense = layers.stream().anyMatch(l -> !l.moe());
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                // rope_theta / rope_parameters: 10000 (transformers' default_theta)
                .rope(HfRope.read(c, 10_000.0, new RopeConfig.None(), RopeConfig.Layout.HALF))
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-6), QkNorm.NONE)) // rms_norm_eps: 1e-6
                .layers(layers)
                // intermediate_size: 5632, the width of the dense (mlp_only) layers
                .denseIntermediateSize(anyDense ? c.positiveIntOr("intermediate_size", 5632) : 0)
                .moe(layers.stream().anyMatch(LayerSpec::moe) ? moe : null)
                .activation(activation)
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))          // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 32768)) // 32768
                // bos_token_id, eos_token_id, pad_token_id: None
                .tokens(HfCommon.tokens(c, OptionalInt.empty(), OptionalInt.empty(), OptionalInt.empty()))
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02))       // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Not used by moe4j: use_cache, output_router_logits, attention_dropout (see MixtralFamily).
        return builder.build();
    }

    /**
     * Which layers are MoE and which attend within a window.
     * <ul>
     *   <li>mlp_only_layers ([]) and decoder_sparse_step (1): layer i is MoE unless listed, and only when
     *       (i + 1) % decoder_sparse_step == 0 (and num_experts > 0).</li>
     *   <li>use_sliding_window (False), sliding_window (4096, forced to 0 when use_sliding_window is off),
     *       max_window_layers (28) and layer_types: given layer_types win; otherwise transformers 5 makes layer i
     *       "sliding_attention" when i is even, i &lt; max_window_layers and use_sliding_window.</li>
     * </ul>
     */
    private static List<LayerSpec> layers(ConfigFields c, int numLayers) {
        List<Integer> mlpOnly = c.intListOr("mlp_only_layers", List.of());
        int step = c.positiveIntOr("decoder_sparse_step", 1);
        boolean useSliding = c.boolOr("use_sliding_window", false);
        int window = useSliding ? c.nonNegativeIntOrNone("sliding_window", OptionalInt.of(4096)) : 0;
        int maxWindowLayers = c.nonNegativeIntOr("max_window_layers", 28);
        List<String> types = QwenLayers.layerTypes(c, numLayers,
                i -> i % 2 == 0 && i < maxWindowLayers && useSliding);
        for (int i : mlpOnly) {
            if (i < 0 || i >= numLayers) {
                throw c.error("mlp_only_layers", "lists layer " + i + " of a " + numLayers + "-layer model");
            }
        }
        var out = new ArrayList<LayerSpec>();
        for (int i = 0; i < numLayers; i++) {
            boolean moe = !mlpOnly.contains(i) && (i + 1) % step == 0;
            out.add(new LayerSpec(moe, types.get(i).equals("sliding_attention") ? window : 0));
        }
        return out;
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfCommon.require(moe.sharedGate() == (moe.sharedIntermediate() > 0) && !moe.expertBias(), family,
                "a shared expert without its gate, or expert biases");
        HfMoe.requireHfRouting(moe, family, false, HfMoe.TRANSFORMERS_BALANCE_LOSS);
        HfMoe.requirePlainSoftmax(moe, family);
        HfCommon.require(HfMoe.gatedActivation(moe, family) == config.activation(), family,
                "experts with another activation than hidden_act");
        HfCommon.require(!a.outputBias() && a.clipQkv().isEmpty() && !a.sinks()
                && config.norms().qkNorm() == QkNorm.NONE, family, "an output bias, clipping, sinks or q/k norms");
        HfCommon.require(a.headDim() * a.numHeads() == config.hiddenSize(), family,
                "a head_dim other than hidden_size / num_attention_heads");
        HfCommon.require(config.rope().layout() == RopeConfig.Layout.HALF, family, "interleaved RoPE");

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", config.denseIntermediateSize() > 0 ? config.denseIntermediateSize()
                : moe.intermediate());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        out.put("rms_norm_eps", config.norms().eps());
        out.put("tie_word_embeddings", config.tieEmbeddings());
        HfRope.write(config.rope(), out);
        QwenLayers.writeWindows(config, out, family, true);
        out.put("attention_dropout", 0.0);
        out.put("decoder_sparse_step", 1);
        config.denseLayerIndices().forEach(out.putArray("mlp_only_layers")::add);
        out.put("moe_intermediate_size", moe.intermediate());
        out.put("shared_expert_intermediate_size", moe.sharedIntermediate());
        out.put("num_experts_per_tok", moe.topK());
        out.put("num_experts", moe.experts());
        out.put("norm_topk_prob", moe.normalizeTopK());
        out.put("router_aux_loss_coef", HfMoe.coefficient(moe, HfMoe.TRANSFORMERS_BALANCE_LOSS));
        out.put("qkv_bias", a.qkvBias());
        HfCommon.writeTokens(config.tokens(), out);
        HfCommon.writeDtype(config.dtype(), out);
        return out;
    }

    @Override
    public TensorNames tensorNames() {
        return TensorNames.builder(ExpertStorage.SEPARATE)
                .rule("layers.{N}.moe.router.weight", "model.layers.{N}.mlp.gate.weight")
                .rule("layers.{N}.moe.experts.{E}.{W}.weight", "model.layers.{N}.mlp.experts.{E}.{W}.weight")
                .rule("layers.{N}.moe.shared_experts.{W}.weight", "model.layers.{N}.mlp.shared_expert.{W}.weight")
                .rule("layers.{N}.moe.shared_expert_gate.weight", "model.layers.{N}.mlp.shared_expert_gate.weight")
                .build();
    }
}
