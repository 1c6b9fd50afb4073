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

import java.util.Collections;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * OLMoE ({@code OlmoeConfig}, {@code modeling_olmoe.py}): every layer a mixture of {@code num_experts} experts of
 * width {@code intermediate_size}, softmax then top-k, renormalised with {@code norm_topk_prob}; RMSNorm over the
 * whole query and key projections (not per head); optional clamping of q, k and v ({@code clip_qkv});
 * {@code attention_bias} on all four projections.
 */
public final class OlmoeFamily implements HfFamily {
    @Override
    public String modelType() {
        return "olmoe";
    }

    @Override
    public String architecture() {
        return "OlmoeForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int layers = c.requiredPositiveInt("num_hidden_layers");
        // num_experts (64); num_local_experts is its attribute_map alias.
        int experts = c.requiredPositiveInt("num_experts", "num_local_experts");
        boolean bias = c.boolOr("attention_bias", false);                      // attention_bias: False
        OptionalDouble clip = c.optionalDouble("clip_qkv", OptionalDouble.empty()); // clip_qkv: None
        if (clip.isPresent() && !(clip.getAsDouble() > 0)) {
            throw c.error("clip_qkv", "must be positive or null, got " + clip.getAsDouble());
        }
        var attention = new AttentionConfig.Standard(heads,
                HfCommon.kvHeads(c, heads, OptionalInt.empty()),                 // num_key_value_heads: None -> heads
                HfCommon.headDim(c, hidden, heads, OptionalInt.empty()), // hidden_size / heads
                bias, bias, clip, false);
        var activation = HfCommon.activation(c, "silu");                    // hidden_act: "silu"
        var moe = HfMoe.build(c, HfMoe.softmaxTopK(hidden,
                c.positiveIntOr("intermediate_size", 2048),                      // intermediate_size: 2048
                experts,
                HfCommon.expertsPerToken(c, 8, experts, c.aliased("num_experts", "num_local_experts")), // 8
                c.boolOr("norm_topk_prob", false),                               // norm_topk_prob: False
                activation,
                c.doubleOr("router_aux_loss_coef", 0.01)));                      // router_aux_loss_coef: 0.01
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                .rope(HfRope.read(c, 10_000.0, new RopeConfig.None(), RopeConfig.Layout.HALF)) // theta: 10000
                // rms_norm_eps: 1e-5, also used by the q/k norms over the whole projections
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-5), QkNorm.WHOLE_PROJECTION))
                .layers(Collections.nCopies(layers, LayerSpec.moeLayer()))
                .moe(moe)
                .activation(activation)
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))           // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 4096))  // 4096
                // bos_token_id: None, eos_token_id: 50279, pad_token_id: 1
                .tokens(HfCommon.tokens(c, OptionalInt.empty(), OptionalInt.of(50279), OptionalInt.of(1)))
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02))        // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Not used by moe4j: use_cache, output_router_logits, attention_dropout (see MixtralFamily).
        return builder.build();
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfCommon.require(config.numMoeLayers() == config.numLayers(), family, "dense layers");
        HfCommon.require(config.layers().stream().noneMatch(LayerSpec::isSliding), family, "sliding windows");
        HfCommon.require(moe.sharedIntermediate() == 0 && !moe.expertBias(), family, "shared experts or expert biases");
        HfMoe.requireHfRouting(moe, family, false, HfMoe.TRANSFORMERS_BALANCE_LOSS);
        HfMoe.requirePlainSoftmax(moe, family);
        HfCommon.require(HfMoe.gatedActivation(moe, family) == config.activation(), family,
                "experts with another activation than hidden_act");
        HfCommon.require(a.qkvBias() == a.outputBias() && !a.sinks(), family, "biases on some projections only, or sinks");
        HfCommon.require(config.norms().qkNorm() == QkNorm.WHOLE_PROJECTION, family,
                "attention without q/k norms over the whole projections");
        HfCommon.require(a.headDim() * a.numHeads() == config.hiddenSize(), family,
                "a head_dim other than hidden_size / num_attention_heads");
        HfCommon.require(config.rope().layout() == RopeConfig.Layout.HALF, family, "interleaved RoPE");

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", moe.intermediate());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        out.put("rms_norm_eps", config.norms().eps());
        HfCommon.writeTokens(config.tokens(), out);
        out.put("tie_word_embeddings", config.tieEmbeddings());
        HfRope.write(config.rope(), out);
        out.put("attention_bias", a.qkvBias());
        out.put("attention_dropout", 0.0);
        if (a.clipQkv().isPresent()) {
            out.put("clip_qkv", a.clipQkv().getAsDouble());
        } else {
            out.putNull("clip_qkv");
        }
        out.put("num_experts_per_tok", moe.topK());
        out.put("num_experts", moe.experts());
        out.put("router_aux_loss_coef", HfMoe.coefficient(moe, HfMoe.TRANSFORMERS_BALANCE_LOSS));
        out.put("norm_topk_prob", moe.normalizeTopK());
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
