package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.model.transformer.ExpertStorage;

import java.util.ArrayList;
import java.util.OptionalInt;

/**
 * DeepSeek-V3 ({@code DeepseekV3Config}, {@code modeling_deepseek_v3.py}, and DeepSeek's own
 * {@code modeling_deepseek.py}, whose extra fields the published configs carry): multi-head latent attention;
 * the first {@code first_k_dense_replace} layers dense; the rest route with sigmoid scores plus a selection-only
 * bias ({@code e_score_correction_bias}) among the best {@code topk_group} of {@code n_group} groups, renormalise
 * with {@code norm_topk_prob}, scale by {@code routed_scaling_factor}, and add {@code n_shared_experts} shared
 * experts; RoPE on the rotary part of each head, interleaved when {@code rope_interleave}.
 */
public final class DeepseekV3Family implements HfFamily {
    @Override
    public String modelType() {
        return "deepseek_v3";
    }

    @Override
    public String architecture() {
        return "DeepseekV3ForCausalLM";
    }

    @Override
    public ModelConfig read(ConfigFields c) {
        int hidden = c.requiredPositiveInt("hidden_size");
        int heads = c.requiredPositiveInt("num_attention_heads");
        int numLayers = c.requiredPositiveInt("num_hidden_layers");
        // n_routed_experts (256); num_local_experts is its attribute_map alias.
        int experts = c.requiredPositiveInt("n_routed_experts", "num_local_experts");
        boolean bias = c.boolOr("attention_bias", false);   // attention_bias: False (q_a, kv_a and o projections)
        var attention = new AttentionConfig.Latent(heads,
                // q_lora_rank: 1536; None projects queries directly from the hidden state
                c.nonNegativeIntOrNone("q_lora_rank", OptionalInt.of(1536)),
                c.positiveIntOr("kv_lora_rank", 512),                                // kv_lora_rank: 512
                c.nonNegativeIntOr("qk_nope_head_dim", 128),                         // qk_nope_head_dim: 128
                c.positiveIntOr("qk_rope_head_dim", 64),                             // qk_rope_head_dim: 64
                c.positiveIntOr("v_head_dim", 128),                                  // v_head_dim: 128
                bias);
        // num_key_value_heads (128) only sets how transformers repeats the expanded keys; latent attention has as
        // many key and value heads as query heads. head_dim and qk_head_dim, which transformers 5 writes, are
        // derived from the rope and nope head dims.

        // scoring_func ("sigmoid") and topk_method ("noaux_tc") come from DeepSeek's code; transformers hard-codes
        // both and DeepSeek's V3 code implements nothing else, so other values are refused, not guessed at.
        String scoring = c.stringOr("scoring_func", "sigmoid");
        if (!scoring.equals("sigmoid")) {
            throw c.error("scoring_func", "is '" + scoring + "'; deepseek_v3 supports 'sigmoid' only");
        }
        String method = c.stringOr("topk_method", "noaux_tc");
        if (!method.equals("noaux_tc")) {
            throw c.error("topk_method", "is '" + method + "'; deepseek_v3 supports 'noaux_tc' only");
        }
        int groups = c.positiveIntOr("n_group", 8);                                  // n_group: 8
        int topKGroups = c.positiveIntOr("topk_group", 4);                           // topk_group: 4
        if (topKGroups > groups) {
            throw c.error("topk_group", "(" + topKGroups + ") must not exceed n_group (" + groups + ")");
        }
        if (experts % groups != 0) {
            throw c.error("n_group", "(" + groups + ") must divide " + c.aliased("n_routed_experts", "num_local_experts")
                    + " (" + experts + ") into groups of equal size");
        }
        var activation = HfCommon.activation(c, "silu");                            // hidden_act: "silu"
        int moeWidth = c.positiveIntOr("moe_intermediate_size", 2048);               // moe_intermediate_size: 2048
        int shared = c.nonNegativeIntOr("n_shared_experts", 1);                      // n_shared_experts: 1
        var moeBuilder = MoeConfig.builder(hidden, moeWidth, experts,
                        HfCommon.expertsPerToken(c, 8, experts,            // num_experts_per_tok: 8
                                c.aliased("n_routed_experts", "num_local_experts")))
                .scoring(Scoring.SIGMOID)
                .selectionBias(true)                                                 // e_score_correction_bias
                .groupLimit(GroupLimit.deepSeekV3(groups, topKGroups))               // groups score their top-2 sum
                .normalizeTopK(c.boolOr("norm_topk_prob", true))                     // norm_topk_prob: True
                .routedScalingFactor(c.positiveDoubleOr("routed_scaling_factor", 2.5)) // routed_scaling_factor: 2.5
                .ffn(ExpertFfn.gated(activation))
                // the shared experts run as one MLP of n_shared_experts x moe_intermediate_size, without a gate
                .sharedExpert(shared * moeWidth, false);
        // aux_loss_alpha (DeepSeek's code, with seq_aux: the sequence-wise loss; transformers computes no balance
        // loss for V3): 0 when absent
        double alpha = c.doubleOr("aux_loss_alpha", 0.0);
        if (alpha > 0) {
            moeBuilder.loss(new SequenceLoss(), alpha);
        }
        var moe = HfMoe.build(c, moeBuilder);

        // first_k_dense_replace (3): layers below it are dense. moe_layer_freq (DeepSeek's code, 1): only every
        // freq-th layer after that is MoE; transformers ignores the field, which only matters when it is not 1.
        int firstDense = c.nonNegativeIntOr("first_k_dense_replace", 3);
        int freq = c.positiveIntOr("moe_layer_freq", 1);
        var layers = new ArrayList<LayerSpec>();
        for (int i = 0; i < numLayers; i++) {
            layers.add(new LayerSpec(i >= firstDense && i % freq == 0, 0));
        }
        boolean anyMoe = layers.stream().anyMatch(LayerSpec::moe);
        boolean anyDense = layers.stream().anyMatch(l -> !l.moe());
        var layout = c.boolOr("rope_interleave", true)                               // rope_interleave: True
                ? RopeConfig.Layout.INTERLEAVED : RopeConfig.Layout.HALF;
        var builder = ModelConfig.builder().family(modelType())
                .vocabSize(c.requiredPositiveInt("vocab_size"))
                .hiddenSize(hidden)
                .attention(attention)
                // rope_theta / rope_parameters: 10000; published configs scale with YaRN (rope_scaling)
                .rope(HfRope.read(c, 10_000.0, new RopeConfig.None(), layout))
                .norms(new NormConfig(c.positiveDoubleOr("rms_norm_eps", 1e-6), QkNorm.NONE))  // rms_norm_eps: 1e-6
                .layers(layers)
                .denseIntermediateSize(anyDense ? c.positiveIntOr("intermediate_size", 18432) : 0) // 18432
                .moe(anyMoe ? moe : null)
                .activation(activation)
                .tieEmbeddings(c.boolOr("tie_word_embeddings", false))               // tie_word_embeddings: False
                .maxPositions(c.positiveIntOr("max_position_embeddings", 4096))      // 4096
                // bos_token_id: 0, eos_token_id: 1, pad_token_id: None
                .tokens(HfCommon.tokens(c, OptionalInt.of(0), OptionalInt.of(1), OptionalInt.empty()))
                .dtype(HfCommon.dtype(c))
                // num_nextn_predict_layers (DeepSeek's code, 0): multi-token-prediction modules, not loaded by
                // transformers and not part of the model's forward pass
                .mtpLayers(c.nonNegativeIntOr("num_nextn_predict_layers", 0))
                .initializerRange(c.doubleOr("initializer_range", 0.02))            // initializer_range: 0.02
                .quantization(HfCommon.quantization(c).orElse(null));
        // Not used by moe4j: use_cache, attention_dropout, pretraining_tp (a tensor-parallel reproduction switch),
        // and from DeepSeek's code seq_aux (the balance loss is taken per sequence) and ep_size.
        return builder.build();
    }

    @Override
    public ObjectNode write(ModelConfig config) {
        String family = modelType();
        if (!(config.attention() instanceof AttentionConfig.Latent a)) {
            throw HfCommon.cannot(family, "standard (non-latent) attention");
        }
        var moe = config.moe().orElseThrow(() -> HfCommon.cannot(family, "a model without experts"));
        HfMoe.requireHfRouting(moe, family, false, new SequenceLoss());
        HfCommon.require(moe.scoring() == Scoring.SIGMOID && moe.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K
                && moe.selectionBias() && !moe.routerBias(), family,
                "a router other than sigmoid scores with a selection bias");
        GroupLimit groups = moe.groupLimit();
        HfCommon.require(groups.scoredPerGroup() == 2 || groups.groups() == 1, family,
                "groups scored by other than their two best experts");
        HfCommon.require(!moe.sharedGate() && !moe.expertBias() && moe.sharedIntermediate() % moe.intermediate() == 0,
                family, "a gated shared expert, one not a whole number of experts wide, or expert biases");
        HfCommon.require(HfMoe.gatedActivation(moe, family) == config.activation(), family,
                "experts with another activation than hidden_act");
        HfCommon.require(config.norms().qkNorm() == QkNorm.NONE, family, "q/k norms");
        HfCommon.require(config.layers().stream().noneMatch(LayerSpec::isSliding), family, "sliding windows");
        int firstDense = config.denseLayerIndices().size();
        for (int i = 0; i < config.numLayers(); i++) {
            HfCommon.require(config.layers().get(i).moe() == (i >= firstDense), family,
                    "dense layers other than the first ones");
        }
        if (config.rope().partialRotaryFactor() != 1.0) {
            throw new BadInputException("cannot save as " + family
                    + ": latent attention sets the rotary part by qk_rope_head_dim, not partial_rotary_factor");
        }

        ObjectNode out = HfCommon.header(Json.mapper().createObjectNode(), architecture(), family);
        out.put("vocab_size", config.vocabSize());
        out.put("hidden_size", config.hiddenSize());
        out.put("intermediate_size", config.denseIntermediateSize() > 0 ? config.denseIntermediateSize()
                : moe.intermediate());
        out.put("moe_intermediate_size", moe.intermediate());
        out.put("num_hidden_layers", config.numLayers());
        out.put("num_attention_heads", a.numHeads());
        out.put("num_key_value_heads", a.numHeads());
        out.put("n_shared_experts", moe.sharedIntermediate() / moe.intermediate());
        out.put("n_routed_experts", moe.experts());
        out.put("routed_scaling_factor", moe.routedScalingFactor());
        out.put("kv_lora_rank", a.kvLoraRank());
        if (a.qLoraRank() > 0) {
            out.put("q_lora_rank", a.qLoraRank());
        } else {
            out.putNull("q_lora_rank");
        }
        out.put("qk_rope_head_dim", a.qkRopeHeadDim());
        out.put("v_head_dim", a.vHeadDim());
        out.put("qk_nope_head_dim", a.qkNopeHeadDim());
        out.put("n_group", groups.groups());
        out.put("topk_group", groups.topGroups());
        out.put("num_experts_per_tok", moe.topK());
        out.put("first_k_dense_replace", firstDense);
        out.put("moe_layer_freq", 1);
        out.put("norm_topk_prob", moe.normalizeTopK());
        out.put("scoring_func", "sigmoid");
        out.put("topk_method", "noaux_tc");
        out.put("aux_loss_alpha", HfMoe.coefficient(moe, new SequenceLoss()));
        out.put("hidden_act", HfCommon.activationName(config.activation()));
        out.put("max_position_embeddings", config.maxPositions());
        out.put("initializer_range", config.initializerRange());
        out.put("rms_norm_eps", config.norms().eps());
        HfCommon.writeTokens(config.tokens(), out);
        out.put("tie_word_embeddings", config.tieEmbeddings());
        HfRope.write(config.rope(), out);
        out.put("rope_interleave", config.rope().layout() == RopeConfig.Layout.INTERLEAVED);
        out.put("attention_bias", a.bias());
        out.put("attention_dropout", 0.0);
        out.put("num_nextn_predict_layers", config.mtpLayers());
        HfCommon.writeDtype(config.dtype(), out);
        return out;
    }

    @Override
    public TensorNames tensorNames() {
        return TensorNames.builder(ExpertStorage.SEPARATE)
                .rule("layers.{N}.attention.q_a_norm.weight", "model.layers.{N}.self_attn.q_a_layernorm.weight")
                .rule("layers.{N}.attention.kv_a_norm.weight", "model.layers.{N}.self_attn.kv_a_layernorm.weight")
                .rule("layers.{N}.attention.kv_a_proj.{W}", "model.layers.{N}.self_attn.kv_a_proj_with_mqa.{W}")
                .rule("layers.{N}.moe.router.weight", "model.layers.{N}.mlp.gate.weight")
                .rule("layers.{N}.moe.router.selection_bias", "model.layers.{N}.mlp.gate.e_score_correction_bias")
                .rule("layers.{N}.moe.experts.{E}.{W}.weight", "model.layers.{N}.mlp.experts.{E}.{W}.weight")
                .rule("layers.{N}.moe.shared_experts.{W}.weight", "model.layers.{N}.mlp.shared_experts.{W}.weight")
                .build();
    }
}
