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
 * Qwen3-MoE ({@code Qwen3MoeConfig}, {@code modeling_qwen3_moe.py}): routed experts only (no shared expert), softmax
 * then top-k, renormalised with {@code norm_topk_prob}; RMSNorm on each query and key head (one weight of
 * {@code head_dim}) before RoPE; {@code head_dim} may differ from hidden_size / heads; {@code attention_bias} on q,
 * k, v and o; {@code mlp_only_layers} and {@code decoder_sparse_step} as in Qwen2-MoE.
 */
public final class Qwen3MoeFamily implements HfFamily {
    @Override
    public String modelType() {
        return "qwen3_moe";
    }

    @Override
    public String architecture() {
        return "Qwen3MoeForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int numLayers = c.requiredPositiveInt("num_hidden_layers");
        // num_experts (128); transformers 5 writes it under its attribute_map name num_local_experts.
        int experts = c.requiredPositiveInt("num_experts", "num_local_experts");
        boolean bias = c.boolOr("attention_bias", false);                         // attention_bias: False
        var attention = new AttentionConfig.Standard(heads,
                HfCommon.kvHeads(c, heads, OptionalInt.of(4)),                      // num_key_value_heads: 4
                // head_dim: the attention reads getattr(config, "head_dim", hidden_size // heads)
                HfCommon.headDim(c, hidden, heads, OptionalInt.empty()),
                bias, bias, OptionalDouble.empty(), false);
        // use_sliding_window (False) and sliding_window (4096, None unless use_sliding_window): when on, every
        // layer attends within the window (Qwen3MoeConfig has no layer_types).
        boolean useSliding = c.boolOr("use_sliding_window", false);
        int window = useSliding ? c.nonNegativeIntOrNone("sliding_window", OptionalInt.of(4096)) : 0;
        List<Integer> mlpOnly = c.intListOr("mlp_only_layers", List.of());           // mlp_only_layers: []
        int step = c.positiveIntOr("decoder_sparse_step", 1);                       // decoder_sparse_step: 1
        var layers = new ArrayList<LayerSpec>();
        for (int i = 0; i < numLayers; i++) {
            layers.add(new LayerSpec(!mlpOnly.contains(i) && (i + 1) % step == 0, window));
        }
        for (int i : mlpOnly) {
            if (i < 0 || i >= numLayers) {
                throw c.error("mlp_only_layers", "lists layer " + i + " of a " + numLayers + "-layer model");
            }
        }
        var activation = HfCommon.activation(c, "silu");                       // hidden_act: "silu"
        var moe = HfMoe.build(c, HfMoe.softmaxTopK(hidden,
                c.positiveIntOr("moe_intermediate_size", 768),                      // moe_intermediate_size: 768
                experts,
                HfCommon.expertsPerToken(c, 8, experts, c.aliased("num_experts", "num_local_experts")), // 8
                c.boolOr("norm_topk_prob", false),                                  // norm_topk_prob: False
                activation,
                c.doubleOr("router_aux_loss_coef", 0.001)));                        // router_aux_loss_coef: 0.001
        boolean anyDense = layers.stream().anyMatch(l -> !l.moe());
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                .rope(HfRope.read(c, 10_000.0, new RopeConfig.None(), RopeConfig.Layout.HALF)) // theta: 10000
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-6), QkNorm.PER_HEAD)) // rms_norm_eps: 1e-6
                .layers(layers)
                .denseIntermediateSize(anyDense ? c.positiveIntOr("intermediate_size", 6144) : 0) // 6144
                .moe(layers.stream().anyMatch(LayerSpec::moe) ? moe : null)
                .activation(activation)
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))              // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 32768))    // 32768
                .tokens(HfCommon.tokens(c, OptionalInt.empty(), OptionalInt.empty(), OptionalInt.empty())) // None
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02))           // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Not used by moe4j: use_cache, output_router_logits, attention_dropout (see MixtralFamily), and
        // max_window_layers, which published configs carry but transformers 5's Qwen3MoeConfig no longer reads.
        return builder.build();
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfCommon.require(moe.sharedIntermediate() == 0 && !moe.expertBias(), family, "shared experts or expert biases");
        HfMoe.requireHfRouting(moe, family, false, HfMoe.TRANSFORMERS_BALANCE_LOSS);
        HfMoe.requirePlainSoftmax(moe, family);
        HfCommon.require(HfMoe.gatedActivation(moe, family) == config.activation(), family,
                "experts with another activation than hidden_act");
        HfCommon.require(a.qkvBias() == a.outputBias() && a.clipQkv().isEmpty() && !a.sinks(), family,
                "biases on some projections only, clipping or sinks");
        HfCommon.require(config.norms().qkNorm() == QkNorm.PER_HEAD, family, "attention without per-head q/k norm");
        HfCommon.require(config.rope().layout() == RopeConfig.Layout.HALF, family, "interleaved RoPE");

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", config.denseIntermediateSize() > 0 ? config.denseIntermediateSize()
                : moe.intermediate());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        out.put("head_dim", a.headDim());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        out.put("rms_norm_eps", config.norms().eps());
        out.put("tie_word_embeddings", config.tieEmbeddings());
        HfRope.write(config.rope(), out);
        out.put("attention_bias", a.qkvBias());
        QwenLayers.writeWindows(config, out, family, false);
        out.put("attention_dropout", 0.0);
        out.put("decoder_sparse_step", 1);
        config.denseLayerIndices().forEach(out.putArray("mlp_only_layers")::add);
        out.put("moe_intermediate_size", moe.intermediate());
        out.put("num_experts_per_tok", moe.topK());
        out.put("num_experts", moe.experts());
        out.put("norm_topk_prob", moe.normalizeTopK());
        out.put("router_aux_loss_coef", HfMoe.coefficient(moe, HfMoe.TRANSFORMERS_BALANCE_LOSS));
        HfCommon.writeTokens(config.tokens(), out);
        HfCommon.writeDtype(config.dtype(), out);
        return out;
    }

    @Override
    public TensorNames tensorNames() {
        return TensorNames.builder(ExpertStorage.SEPARATE)
                .rule("layers.{N}.moe.router.weight", "model.layers.{N}.mlp.gate.weight")
                .rule("layers.{N}.moe.experts.{E}.{W}.weight", "model.layers.{N}.mlp.experts.{E}.{W}.weight")
                .build();
    }
}
