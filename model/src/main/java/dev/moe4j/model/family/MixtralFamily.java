package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.model.transformer.ExpertStorage;

import java.util.Collections;
import java.util.OptionalInt;

/**
 * Mixtral ({@code MixtralConfig}, {@code modeling_mixtral.py}): every layer a mixture of {@code num_local_experts}
 * SwiGLU experts (w1 gate, w3 up, w2 down) of width {@code intermediate_size}; the router takes a softmax over all
 * experts, keeps the top {@code num_experts_per_tok} and always renormalises them; grouped-query attention without
 * biases; RoPE in the half layout; no shared experts.
 */
public final class MixtralFamily implements HfFamily {
    @Override
    public String modelType() {
        return "mixtral";
    }

    @Override
    public String architecture() {
        return "MixtralForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int layers = c.requiredPositiveInt("num_hidden_layers");
        // num_experts is MixtralConfig's attribute_map alias of num_local_experts.
        int experts = c.requiredPositiveInt("num_local_experts", "num_experts");
        var attention = AttentionConfig.Standard.of(heads,
                HfCommon.kvHeads(c, heads, OptionalInt.of(8)), // num_key_value_heads: 8; None -> heads
                HfCommon.headDim(c, hidden, heads, OptionalInt.empty())); // head_dim: None -> hidden / heads
        // sliding_window: None (full attention); when set, every layer attends within the window.
        int window = c.nonNegativeIntOrNone("sliding_window", OptionalInt.empty());
        var activation = HfCommon.activation(c, "silu");                 // hidden_act: "silu"
        double jitter = c.doubleOr("router_jitter_noise", 0.0);          // router_jitter_noise: 0.0 (training only)
        if (!(jitter >= 0 && jitter < 1)) {
            throw c.error("router_jitter_noise", "must be in [0, 1), got " + jitter);
        }
        // The router always renormalises its top-k softmax weights; Mixtral has no switch for it.
        var moe = HfMoe.build(c, HfMoe.softmaxTopK(hidden,
                c.positiveIntOr("intermediate_size", 14336),    // intermediate_size: 14336 (each expert's width)
                experts,
                HfCommon.expertsPerToken(c, 2, experts, c.aliased("num_local_experts", "num_experts")), // 2
                true, activation,
                c.doubleOr("router_aux_loss_coef", 0.001))      // router_aux_loss_coef: 0.001
                .noise(jitter > 0 ? Noise.jitter(jitter) : Noise.none()));
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                // rope_theta / rope_parameters: MixtralConfig.default_theta = 1e6
                .rope(HfRope.read(c, 1_000_000.0, new RopeConfig.None(), RopeConfig.Layout.HALF))
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-5), QkNorm.NONE)) // rms_norm_eps: 1e-5
                .layers(Collections.nCopies(layers, new LayerSpec(true, window)))
                .moe(moe)
                .activation(activation)
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))     // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 4096 * 32)) // 131072
                // bos_token_id: 1, eos_token_id: 2, pad_token_id: None
                .tokens(HfCommon.tokens(c, OptionalInt.of(1), OptionalInt.of(2), OptionalInt.empty()))
                .dtype(HfCommon.dtype(c))
                .initializerRange(c.doubleOr("initializer_range", 0.02))  // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Read by transformers but not by moe4j's model: use_cache, output_router_logits (runtime switches) and
        // attention_dropout (0.0 in every released model; moe4j trains without attention dropout).
        return builder.build();
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        var a = HfCommon.standardAttention(config, family);
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfCommon.require(config.numMoeLayers() == config.numLayers(), family, "dense layers");
        HfCommon.require(moe.sharedIntermediate() == 0 && !moe.expertBias(), family, "shared experts or expert biases");
        HfMoe.requireHfRouting(moe, family, true, HfMoe.TRANSFORMERS_BALANCE_LOSS);
        HfMoe.requirePlainSoftmax(moe, family);
        HfCommon.require(moe.normalizeTopK(), family, "top-k weights that are not renormalised");
        HfCommon.require(HfMoe.gatedActivation(moe, family) == config.activation(), family,
                "experts with another activation than hidden_act");
        HfCommon.require(!a.qkvBias() && !a.outputBias() && a.clipQkv().isEmpty() && !a.sinks()
                && config.norms().qkNorm() == QkNorm.NONE, family, "attention biases, clipping, sinks or q/k norms");
        HfCommon.require(config.rope().layout() == RopeConfig.Layout.HALF, family, "interleaved RoPE");
        int window = config.layers().getFirst().slidingWindow();
        HfCommon.require(config.layers().stream().allMatch(l -> l.slidingWindow() == window), family,
                "a sliding window on some layers only");

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", moe.intermediate());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numKvHeads());
        out.put("head_dim", a.headDim());
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        out.put("rms_norm_eps", config.norms().eps());
        HfCommon.writeTokens(config.tokens(), out);
        out.put("tie_word_embeddings", config.tieEmbeddings());
        if (window > 0) {
            out.put("sliding_window", window);
        } else {
            out.putNull("sliding_window");
        }
        out.put("attention_dropout", 0.0);
        out.put("num_experts_per_tok", moe.topK());
        out.put("num_local_experts", moe.experts());
        out.put("router_aux_loss_coef", HfMoe.coefficient(moe, HfMoe.TRANSFORMERS_BALANCE_LOSS));
        out.put("router_jitter_noise", moe.noise().amount());
        HfRope.write(config.rope(), out);
        HfCommon.writeDtype(config.dtype(), out);
        return out;
    }

    /** transformers 5 loads block_sparse_moe as {@code mlp}: the router is {@code mlp.gate} in memory. */
    @Override
    public String transformersName(String moe4jName) {
        return HfFamily.super.transformersName(moe4jName).replace(".block_sparse_moe.", ".mlp.");
    }

    @Override
    public TensorNames tensorNames() {
        // Hub checkpoints keep transformers 4's names: block_sparse_moe, w1 (gate), w3 (up) and w2 (down).
        return TensorNames.builder(ExpertStorage.SEPARATE)
                .rule("layers.{N}.moe.router.weight", "model.layers.{N}.block_sparse_moe.gate.weight")
                .rule("layers.{N}.moe.experts.{E}.gate_proj.weight", "model.layers.{N}.block_sparse_moe.experts.{E}.w1.weight")
                .rule("layers.{N}.moe.experts.{E}.up_proj.weight", "model.layers.{N}.block_sparse_moe.experts.{E}.w3.weight")
                .rule("layers.{N}.moe.experts.{E}.down_proj.weight", "model.layers.{N}.block_sparse_moe.experts.{E}.w2.weight")
                .build();
    }
}
