package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.model.transformer.ExpertStorage;

import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * gpt-oss ({@code GptOssConfig}, {@code modeling_gpt_oss.py}): every layer a mixture of {@code num_local_experts}
 * experts with biases and a clamped SwiGLU; the router (with a bias) keeps the top-k logits and softmaxes only
 * those; attention with biases on all projections and a learned sink logit per head; layers alternate between a
 * sliding window of {@code sliding_window} tokens and full attention; YaRN RoPE by default.
 */
public final class GptOssFamily implements HfFamily {
    /** GptOssConfig's rope default when a config gives neither rope_parameters nor rope_scaling. */
    private static final RopeConfig.Yarn DEFAULT_YARN = new RopeConfig.Yarn(32.0, OptionalInt.of(4096), 32.0, 1.0,
            OptionalDouble.empty(), OptionalDouble.empty(), OptionalDouble.empty(), false);

    @Override
    public String modelType() {
        return "gpt_oss";
    }

    @Override
    public String architecture() {
        return "GptOssForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int numLayers = c.requiredPositiveInt("num_hidden_layers");
        // num_local_experts (128); num_experts is its attribute_map alias.
        int experts = c.requiredPositiveInt("num_local_experts", "num_experts");
        boolean bias = c.boolOr("attention_bias", true);                        // attention_bias: True
        var attention = new AttentionConfig.Standard(heads,
                HfCommon.kvHeads(c, heads, OptionalInt.of(8)),                    // num_key_value_heads: 8
                HfCommon.headDim(c, hidden, heads, OptionalInt.of(64)), // head_dim: 64 (None: hidden/heads)
                bias, bias, OptionalDouble.empty(), true);                        // every layer has sinks
        // sliding_window (128) applies to the layers layer_types calls sliding_attention; layer_types defaults to
        // sliding for even layers and full for odd ones.
        int window = c.nonNegativeIntOrNone("sliding_window", OptionalInt.of(128));
        List<String> types = QwenLayers.layerTypes(c, numLayers, i -> i % 2 == 0);
        var layers = new ArrayList<LayerSpec>();
        for (String type : types) {
            layers.add(new LayerSpec(true, type.equals(QwenLayers.SLIDING) ? window : 0));
        }
        var builder = MoeConfig.builder(hidden,
                        c.positiveIntOr("intermediate_size", 2880),               // intermediate_size: 2880
                        experts,
                        HfCommon.expertsPerToken(c, 4, experts,               // num_experts_per_tok: 4
                                c.aliased("num_local_experts", "num_experts")))
                .gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                .routerBias(true)
                .expertBias(true)
                // swiglu_alpha (1.702) and swiglu_limit (7.0) of the experts' clamped SwiGLU, whose gate_up_proj
                // interleaves gate and up columns
                .ffn(new ExpertFfn.Gated(new GluParams.Clamped((float) c.doubleOr("swiglu_alpha", 1.702),
                        (float) c.doubleOr("swiglu_limit", 7.0), GluParams.Layout.INTERLEAVED)));
        double auxLossCoef = c.doubleOr("router_aux_loss_coef", 0.001);         // router_aux_loss_coef: 0.001
        if (auxLossCoef > 0) {
            builder.loss(HfMoe.TRANSFORMERS_BALANCE_LOSS, auxLossCoef);
        }
        var moe = HfMoe.build(c, builder);
        var model = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                // rope: default_theta 150000; scaling defaults to YaRN x32 from 4096 positions, not truncated
                .rope(HfRope.read(c, 150_000.0, DEFAULT_YARN, RopeConfig.Layout.HALF))
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-5), QkNorm.NONE))  // rms_norm_eps: 1e-5
                .layers(layers)
                .moe(moe)
                // hidden_act ("silu") names the sigmoid gating of the experts' clamped SwiGLU; it would be the
                // activation of dense layers, which gpt-oss does not have
                .activation(HfCommon.activation(c, "silu"))
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))            // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 131072)) // 131072
                .tokens(HfCommon.tokens(c, OptionalInt.empty(), OptionalInt.empty(), OptionalInt.empty())) // None
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02))         // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Not used by moe4j: use_cache, output_router_logits, attention_dropout (see MixtralFamily), and the
        // published configs' experts_per_token and initial_context_length, leftovers of OpenAI's own format that
        // transformers ignores too (num_experts_per_tok and the YaRN original_max_position_embeddings hold them).
        return model.build();
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfCommon.require(config.numMoeLayers() == config.numLayers(), family, "dense layers");
        HfCommon.require(moe.sharedIntermediate() == 0 && moe.expertBias(), family,
                "shared experts, or experts without biases");
        HfMoe.requireHfRouting(moe, family, false, HfMoe.TRANSFORMERS_BALANCE_LOSS);
        HfCommon.require(moe.scoring() == Scoring.SOFTMAX && moe.gateOrder() == GateOrder.TOP_K_THEN_SOFTMAX
                && !moe.selectionBias() && !moe.groupLimit().isLimited() && moe.routedScalingFactor() == 1.0
                && moe.routerBias(), family, "a router other than top-k then softmax with a bias");
        if (!(moe.ffn() instanceof ExpertFfn.Gated(GluParams.Clamped glu)
                && glu.layout() == GluParams.Layout.INTERLEAVED)) {
            throw HfCommon.cannot(family, "experts computing " + moe.ffn() + " (gpt_oss: the interleaved clamped SwiGLU)");
        }
        HfCommon.require(a.qkvBias() == a.outputBias() && a.sinks() && a.clipQkv().isEmpty()
                && config.norms().qkNorm() == QkNorm.NONE, family,
                "attention without sinks, biases on some projections only, clipping or q/k norms");
        HfCommon.require(config.rope().layout() == RopeConfig.Layout.HALF, family, "interleaved RoPE");
        int window = QwenLayers.commonWindow(config, family);

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_local_experts", moe.experts());
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", moe.intermediate());
        out.put("head_dim", a.headDim());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        if (window > 0) {
            out.put("sliding_window", window);
        } else {
            out.putNull("sliding_window");
        }
        out.put("tie_word_embeddings", config.tieEmbeddings());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("initializer_range", config.initializerRange());
        out.put("max_position_embeddings", config.maxPositions());
        out.put("rms_norm_eps", config.norms().eps());
        HfRope.write(config.rope(), out);
        out.put("attention_dropout", 0.0);
        out.put("num_experts_per_tok", moe.topK());
        // The GLU holds float32 parameters; their shortest decimal form is what the config said (1.702, not 1.70200002).
        out.put("swiglu_alpha", Double.parseDouble(Float.toString(glu.alpha())));
        out.put("swiglu_limit", Double.parseDouble(Float.toString(glu.limit())));
        out.put("router_aux_loss_coef", HfMoe.coefficient(moe, HfMoe.TRANSFORMERS_BALANCE_LOSS));
        var types = out.putArray("layer_types");
        config.layers().forEach(l -> types.add(l.isSliding() ? QwenLayers.SLIDING : QwenLayers.FULL));
        HfCommon.writeTokens(config.tokens(), out);
        out.put("attention_bias", a.qkvBias());
        HfCommon.writeDtype(config.dtype(), out);
        return out;
    }

    @Override
    public TensorNames tensorNames() {
        // The experts are stacked and stored [in, out]: gate_up_proj [E, H, 2I], down_proj [E, I, H].
        return TensorNames.builder(ExpertStorage.TRANSPOSED)
                .rule("layers.{N}.moe.router.{W}", "model.layers.{N}.mlp.router.{W}")
                .rule("layers.{N}.moe.experts.{W}", "model.layers.{N}.mlp.experts.{W}")
                .build();
    }
}
