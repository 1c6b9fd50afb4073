package dev.moe4j.model.gguf;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgufFields;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.family.HfFamilies;

import java.math.BigDecimal;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * A GGUF file's hyperparameters (llama.cpp's {@code ARCH.*} keys) as moe4j's {@link ModelConfig}. They are mapped
 * onto the config.json of the Hugging Face family whose semantics llama.cpp's architecture has, and that is read by
 * the family, so a GGUF model means what the same model in a folder means: {@code llama} with experts is Mixtral
 * (softmax top-k, renormalised), {@code qwen3moe} is Qwen3-MoE (llama.cpp always renormalises its top-k),
 * {@code qwen2moe} is Qwen2-MoE and {@code olmoe} OLMoE (neither renormalises), {@code gpt-oss} is gpt-oss and
 * {@code deepseek2} with sigmoid gating DeepSeek-V3. Where
 * llama.cpp's weights differ from transformers' layout, the config says so instead of the weights being moved:
 * {@code llama}'s query and key rows are in adjacent-pair order, so its RoPE is {@link RopeConfig.Layout#INTERLEAVED}.
 * Where llama.cpp computes a feature its own way, the config says what llama.cpp computes: YaRN's correction range
 * is rounded to whole dimensions (transformers' {@code truncate}), as ggml always does it.
 * A required key that is missing, or a feature moe4j would compute differently, is one error naming file and key.
 */
final class GgufModelConfig {
    /** llama.cpp's {@code LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID}. */
    static final int SIGMOID_GATING = 2;

    private final GgufReader reader;
    private final GgufFields f;
    private final GgufArchitecture arch;
    private final String p;
    private final String need;

    private GgufModelConfig(GgufReader reader, GgufFields f, GgufArchitecture arch) {
        this.reader = reader;
        this.f = f;
        this.arch = arch;
        this.p = arch.ggufName() + ".";
        this.need = "a " + arch.ggufName() + " model";
    }

    static ModelConfig read(GgufReader reader) {
        var f = new GgufFields(reader.path(), reader.metadata());
        String name = f.string("general.architecture").orElseThrow(() -> new BadInputException(reader.path()
                + ": missing metadata 'general.architecture', which names the model's architecture"));
        GgufArchitecture arch = GgufArchitecture.named(name).orElseThrow(() -> f.error("general.architecture",
                "is '" + name + "', an architecture moe4j does not run; it runs " + GgufArchitecture.names()));
        return new GgufModelConfig(reader, f, arch).read();
    }

    private ModelConfig read() {
        long hidden = f.requiredInteger(p + "embedding_length", 1, need);
        long heads = f.requiredInteger(p + "attention.head_count", 1, need);
        long experts = f.requiredInteger(p + "expert_count", 1, "a mixture-of-experts " + arch.ggufName()
                + " model (moe4j runs MoE models)");
        long used = f.requiredInteger(p + "expert_used_count", 1, need);
        if (used > experts) {
            throw f.error(p + "expert_used_count", "is " + used + " but expert_count is " + experts);
        }

        ObjectNode c = Json.mapper().createObjectNode();
        c.put("model_type", arch.family());
        c.put("vocab_size", vocabSize());
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", f.requiredInteger(p + "block_count", 1, need));
        c.put("num_attention_heads", heads);
        c.put("hidden_act", "silu");
        c.put("rms_norm_eps", f.number(p + "attention.layer_norm_rms_epsilon").orElseThrow(() ->
                new BadInputException(f.file() + ": missing metadata '" + p + "attention.layer_norm_rms_epsilon',"
                        + " which " + need + " needs")));
        // llama.cpp's default base when the file gives none, whatever the family's config.json default is.
        c.put("rope_theta", f.number(p + "rope.freq_base").orElse(10_000.0));
        rope(c);
        c.put("max_position_embeddings", f.requiredInteger(p + "context_length", 1, need));
        c.put("tie_word_embeddings", reader.info("output.weight").isEmpty());
        c.put("num_experts_per_tok", used);
        if (arch == GgufArchitecture.DEEPSEEK2) {
            latent(c, heads, experts);
        } else {
            standard(c, hidden, heads, experts);
        }
        tokens(c);
        reader.info("token_embd.weight").map(GgufTensorInfo::type).flatMap(t -> switch (t.dtype()) {
            case F32 -> Optional.of("float32");
            case BF16 -> Optional.of("bfloat16");
            case F16 -> Optional.of("float16");
            default -> Optional.empty();
        }).ifPresent(d -> c.put("dtype", d));

        ModelConfig config = HfFamilies.read(c, f.file() + " (its " + arch.ggufName() + " metadata)");
        if (!arch.interleavedRope()) {
            return config;
        }
        RopeConfig r = config.rope();
        return config.toBuilder().rope(new RopeConfig(r.theta(), r.scaling(), RopeConfig.Layout.INTERLEAVED,
                r.partialRotaryFactor())).build();
    }

    /** Multi-head (grouped-query) attention and the experts of every architecture but deepseek2. */
    private void standard(ObjectNode c, long hidden, long heads, long experts) {
        long kvHeads = f.integer(p + "attention.head_count_kv", 1).orElse(heads);
        long headDim = f.integer(p + "attention.key_length", 1).orElse(hidden / heads);
        long valueDim = f.integer(p + "attention.value_length", 1).orElse(headDim);
        if (valueDim != headDim) {
            throw f.error(p + "attention.value_length", "is " + valueDim + " but attention.key_length is " + headDim
                    + "; moe4j's attention has one head size for keys and values");
        }
        long rotary = f.integer(p + "rope.dimension_count", 1).orElse(headDim);
        if (rotary != headDim) {
            throw f.error(p + "rope.dimension_count", "is " + rotary + " of a head of " + headDim
                    + "; moe4j runs " + arch.ggufName() + " with RoPE over whole heads");
        }
        c.put("num_key_value_heads", kvHeads);
        c.put("head_dim", headDim);
        // llama and olmoe size their experts by feed_forward_length, the others by the expert key
        long expertWidth = arch == GgufArchitecture.LLAMA || arch == GgufArchitecture.OLMOE
                ? f.integer(p + "expert_feed_forward_length", 1).orElseGet(() ->
                        f.requiredInteger(p + "feed_forward_length", 1, need))
                : f.requiredInteger(p + "expert_feed_forward_length", 1, need);
        switch (arch) {
            case LLAMA -> {
                c.put("num_local_experts", experts);
                c.put("intermediate_size", expertWidth);
                c.putNull("sliding_window");
            }
            case QWEN2MOE -> {
                c.put("num_experts", experts);
                c.put("moe_intermediate_size", expertWidth);
                // llama.cpp's shared expert is feed_forward_length wide when the file does not say
                c.put("shared_expert_intermediate_size", f.integer(p + "expert_shared_feed_forward_length", 1)
                        .orElseGet(() -> f.requiredInteger(p + "feed_forward_length", 1, need)));
                c.put("norm_topk_prob", false);
                c.put("qkv_bias", true);
            }
            case QWEN3MOE -> {
                c.put("num_experts", experts);
                c.put("moe_intermediate_size", expertWidth);
                c.put("norm_topk_prob", true);
                c.put("attention_bias", false);
            }
            case OLMOE -> {
                c.put("num_experts", experts);
                c.put("intermediate_size", expertWidth);
                c.put("norm_topk_prob", false);
                c.put("attention_bias", false);
                c.putNull("clip_qkv");
            }
            case GPT_OSS -> {
                c.put("num_local_experts", experts);
                c.put("intermediate_size", expertWidth);
                c.put("attention_bias", true);
                // llama.cpp's gpt-oss: the window on the layers whose index modulo the period is below period - 1
                // (period 2: the even layers), full attention on the others
                long window = f.requiredInteger(p + "attention.sliding_window", 1, need);
                long period = f.integer(p + "attention.sliding_window_pattern", 1).orElse(2);
                c.put("sliding_window", window);
                var types = c.putArray("layer_types");
                for (long i = 0; i < c.get("num_hidden_layers").asLong(); i++) {
                    types.add(i % period < period - 1 ? "sliding_attention" : "full_attention");
                }
                // built into llama.cpp's clamped SwiGLU
                c.put("swiglu_alpha", 1.702);
                c.put("swiglu_limit", 7.0);
            }
            case DEEPSEEK2 -> throw new IllegalStateException("deepseek2 has latent attention");
        }
    }

    /**
     * deepseek2: latent attention and DeepSeek-V3's router. Files of llama.cpp's current converter give the heads'
     * widths under {@code key_length_mla}/{@code value_length_mla} (key_length and value_length then being the
     * latent's, as llama.cpp caches it); older files give them under key_length and value_length.
     */
    private void latent(ObjectNode c, long heads, long experts) {
        long gating = f.integer(p + "expert_gating_func", 0).orElse(0);
        if (gating != SIGMOID_GATING) {
            throw f.error(p + "expert_gating_func", (gating == 0 ? "is missing, so llama.cpp gates with a softmax"
                    : "is " + gating) + " (DeepSeek-V2's routing); moe4j runs deepseek2 with sigmoid gating ("
                    + SIGMOID_GATING + "), DeepSeek-V3's");
        }
        // transformers' DeepSeek-V3 builds its q_a and kv_a norms with 1e-6, llama.cpp with this epsilon
        if ((float) c.get("rms_norm_eps").asDouble() != 1e-6f) {
            throw f.error(p + "attention.layer_norm_rms_epsilon", "is " + c.get("rms_norm_eps").asDouble()
                    + "; moe4j's latent attention normalises its q_a and kv_a projections with 1e-6, as"
                    + " transformers does, where llama.cpp would take this epsilon");
        }
        if (f.number(p + "attention.temperature_scale").orElse(0) != 0) {
            throw f.error(p + "attention.temperature_scale", "is set; moe4j does not scale queries by position");
        }
        boolean mla = f.has(p + "attention.key_length_mla") || f.has(p + "attention.value_length_mla");
        String keyKey = p + (mla ? "attention.key_length_mla" : "attention.key_length");
        long qk = f.requiredInteger(keyKey, 1, need);
        long value = f.requiredInteger(p + (mla ? "attention.value_length_mla" : "attention.value_length"), 1, need);
        long rope = f.requiredInteger(p + "rope.dimension_count", 1, need);
        if (rope >= qk) {
            throw f.error(p + "rope.dimension_count", "is " + rope + " of a query/key head of " + qk + " (" + keyKey
                    + "); latent attention needs a part without position");
        }
        long qLora = f.integer(p + "attention.q_lora_rank", 0).orElse(0);
        if (qLora > 0) {
            c.put("q_lora_rank", qLora);
        } else {
            c.putNull("q_lora_rank");
        }
        c.put("kv_lora_rank", f.requiredInteger(p + "attention.kv_lora_rank", 1, need));
        c.put("qk_nope_head_dim", qk - rope);
        c.put("qk_rope_head_dim", rope);
        c.put("v_head_dim", value);
        c.put("num_key_value_heads", heads);
        c.put("attention_bias", false);
        // llama.cpp's deepseek2 rotates adjacent pairs, as DeepSeek's rope_interleave does
        c.put("rope_interleave", true);

        long expertWidth = f.requiredInteger(p + "expert_feed_forward_length", 1, need);
        long dense = f.integer(p + "leading_dense_block_count", 0).orElse(0);
        c.put("n_routed_experts", experts);
        c.put("moe_intermediate_size", expertWidth);
        c.put("n_shared_experts", f.requiredInteger(p + "expert_shared_count", 1, need));
        c.put("first_k_dense_replace", dense);
        c.put("intermediate_size", dense > 0 ? f.requiredInteger(p + "feed_forward_length", 1,
                "a deepseek2 model with leading dense layers") : expertWidth);
        c.put("norm_topk_prob", f.bool(p + "expert_weights_norm").orElse(false));
        // 0 or missing: llama.cpp does not scale the weights
        double scale = f.number(p + "expert_weights_scale").orElse(0);
        c.put("routed_scaling_factor", scale == 0 ? 1.0 : scale);
        long groups = Math.max(1, f.integer(p + "expert_group_count", 0).orElse(1));
        c.put("n_group", groups);
        c.put("topk_group", f.integer(p + "expert_group_used_count", 1).orElse(groups));
        c.put("scoring_func", "sigmoid");
        c.put("topk_method", "noaux_tc");
        c.put("num_nextn_predict_layers", 0);
    }

    /** ARCH.vocab_size, else the rows of the embedding, else the vocabulary's length. */
    private long vocabSize() {
        OptionalLong key = f.integer(p + "vocab_size", 1);
        if (key.isPresent()) {
            return key.getAsLong();
        }
        Optional<GgufTensorInfo> embedding = reader.info("token_embd.weight");
        if (embedding.isPresent() && embedding.get().shape().length == 2) {
            return embedding.get().shape()[0];
        }
        return f.strings("tokenizer.ggml.tokens").map(t -> (long) t.size()).filter(n -> n > 0).orElseThrow(() ->
                new BadInputException(f.file() + ": missing metadata '" + p + "vocab_size' (and no token_embd.weight"
                        + " or tokenizer.ggml.tokens to take it from)"));
    }

    /**
     * Linear scaling or none, under either of llama.cpp's keys, and YaRN for gpt-oss and deepseek2 as llama.cpp
     * computes it: the correction range rounded to whole dimensions, the original context the training length when
     * the file gives none, and for deepseek2 the logit scale from {@code rope.scaling.yarn_log_multiplier} (0.1 ×
     * transformers' mscale_all_dim, with mscale taken equal to it). Other scalings are refused by name.
     */
    private void rope(ObjectNode c) {
        String type = f.string(p + "rope.scaling.type").orElse("none");
        double factor = f.number(p + "rope.scaling.factor").orElseGet(() -> f.number(p + "rope.scale_linear")
                .orElse(1.0));
        if (f.has(p + "rope.scale_linear") && !f.has(p + "rope.scaling.type")) {
            type = "linear";
        }
        boolean yarnArchitecture = arch == GgufArchitecture.GPT_OSS || arch == GgufArchitecture.DEEPSEEK2;
        switch (type) {
            case "none" -> c.putNull("rope_scaling"); // gpt-oss's config.json would otherwise default to YaRN
            case "linear" -> {
                if (factor != 1.0) {
                    var scaling = c.putObject("rope_scaling");
                    scaling.put("rope_type", "linear");
                    scaling.put("factor", factor);
                } else {
                    c.putNull("rope_scaling");
                }
            }
            case "yarn" -> {
                if (!yarnArchitecture) {
                    throw f.error(p + "rope.scaling.type", "is 'yarn'; moe4j reads YaRN in gpt-oss and deepseek2"
                            + " files only");
                }
                yarn(c.putObject("rope_scaling"), factor);
            }
            default -> throw f.error(p + "rope.scaling.type", "is '" + type + "'; moe4j reads GGUF models with"
                    + " RoPE scaling none, linear" + (yarnArchitecture ? " or yarn" : ""));
        }
    }

    private void yarn(ObjectNode scaling, double factor) {
        for (String key : new String[] {"rope.scaling.attn_factor", "rope.scaling.yarn_ext_factor"}) {
            if (f.number(p + key).orElse(1.0) != 1.0) {
                throw f.error(p + key, "is " + f.number(p + key).getAsDouble() + "; moe4j runs YaRN with 1 there");
            }
        }
        scaling.put("rope_type", "yarn");
        scaling.put("factor", factor);
        scaling.put("original_max_position_embeddings", f.integer(p + "rope.scaling.original_context_length", 1)
                .orElseGet(() -> f.requiredInteger(p + "context_length", 1, need)));
        scaling.put("beta_fast", f.number(p + "rope.scaling.yarn_beta_fast").orElse(32.0));
        scaling.put("beta_slow", f.number(p + "rope.scaling.yarn_beta_slow").orElse(1.0));
        scaling.put("truncate", true);
        String logMul = p + "rope.scaling.yarn_log_multiplier";
        double multiplier = f.number(logMul).orElse(0);
        if (arch == GgufArchitecture.DEEPSEEK2) {
            if (multiplier == 0) {
                throw f.error(logMul, "is missing; llama.cpp's deepseek2 then scales the rotary part of queries and"
                        + " keys by YaRN's magnitude as well as their scores, which transformers does not");
            }
            // the converter stores 0.1 × mscale_all_dim; a decimal shift gives back the number it was given
            double mscale = new BigDecimal(Double.toString(multiplier)).movePointRight(1).doubleValue();
            scaling.put("mscale", mscale);
            scaling.put("mscale_all_dim", mscale);
        } else if (multiplier != 0) {
            throw f.error(logMul, "is " + multiplier + "; moe4j reads gpt-oss's YaRN without it");
        }
    }

    /** BOS, EOS (with llama.cpp's end-of-turn token, which also ends a reply) and padding ids. */
    private void tokens(ObjectNode c) {
        c.putNull("bos_token_id");
        c.putNull("pad_token_id");
        f.integer("tokenizer.ggml.bos_token_id", 0).ifPresent(id -> c.put("bos_token_id", id));
        f.integer("tokenizer.ggml.padding_token_id", 0).ifPresent(id -> c.put("pad_token_id", id));
        var eos = c.putArray("eos_token_id");
        f.integer("tokenizer.ggml.eos_token_id", 0).ifPresent(eos::add);
        f.integer("tokenizer.ggml.eot_token_id", 0).ifPresent(id -> {
            if (eos.isEmpty() || eos.get(0).asLong() != id) {
                eos.add(id);
            }
        });
    }
}
