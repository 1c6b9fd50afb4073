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

import java.util.Optional;
import java.util.OptionalLong;

/**
 * A GGUF file's hyperparameters (llama.cpp's {@code ARCH.*} keys) as moe4j's {@link ModelConfig}. They are mapped
 * onto the config.json of the Hugging Face family whose semantics llama.cpp's architecture has, and that is read by
 * the family, so a GGUF model means what the same model in a folder means: {@code llama} with experts is Mixtral
 * (softmax top-k, renormalised), {@code qwen3moe} is Qwen3-MoE (llama.cpp always renormalises its top-k),
 * {@code qwen2moe} is Qwen2-MoE and {@code olmoe} OLMoE (neither renormalises). Where
 * llama.cpp's weights differ from transformers' layout, the config says so instead of the weights being moved:
 * {@code llama}'s query and key rows are in adjacent-pair order, so its RoPE is {@link RopeConfig.Layout#INTERLEAVED}.
 * A required key that is missing, or a feature moe4j would compute differently, is one error naming file and key.
 */
final class GgufModelConfig {
    private final GgufReader reader;
    private final GgufFields f;
    private final GgufArchitecture arch;
    private final String p;

    private GgufModelConfig(GgufReader reader, GgufFields f, GgufArchitecture arch) {
        this.reader = reader;
        this.f = f;
        this.arch = arch;
        this.p = arch.ggufName() + ".";
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
        String need = "a " + arch.ggufName() + " model";
        long hidden = f.requiredInteger(p + "embedding_length", 1, need);
        long heads = f.requiredInteger(p + "attention.head_count", 1, need);
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
        long experts = f.requiredInteger(p + "expert_count", 1, "a mixture-of-experts " + arch.ggufName()
                + " model (moe4j runs MoE models)");
        long used = f.requiredInteger(p + "expert_used_count", 1, need);
        if (used > experts) {
            throw f.error(p + "expert_used_count", "is " + used + " but expert_count is " + experts);
        }
        // llama and olmoe size their experts by feed_forward_length, the Qwen architectures by the expert key
        boolean qwen = arch == GgufArchitecture.QWEN2MOE || arch == GgufArchitecture.QWEN3MOE;
        long expertWidth = !qwen
                ? f.integer(p + "expert_feed_forward_length", 1).orElseGet(() ->
                        f.requiredInteger(p + "feed_forward_length", 1, need))
                : f.requiredInteger(p + "expert_feed_forward_length", 1, need);

        ObjectNode c = Json.mapper().createObjectNode();
        c.put("model_type", arch.family());
        c.put("vocab_size", vocabSize());
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", f.requiredInteger(p + "block_count", 1, need));
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", kvHeads);
        c.put("head_dim", headDim);
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

    /** Linear scaling or none, under either of llama.cpp's keys; other scalings are refused by name. */
    private void rope(ObjectNode c) {
        String type = f.string(p + "rope.scaling.type").orElse("none");
        double factor = f.number(p + "rope.scaling.factor").orElseGet(() -> f.number(p + "rope.scale_linear")
                .orElse(1.0));
        if (f.has(p + "rope.scale_linear") && !f.has(p + "rope.scaling.type")) {
            type = "linear";
        }
        switch (type) {
            case "none" -> {
            }
            case "linear" -> {
                if (factor != 1.0) {
                    var scaling = c.putObject("rope_scaling");
                    scaling.put("rope_type", "linear");
                    scaling.put("factor", factor);
                }
            }
            default -> throw f.error(p + "rope.scaling.type", "is '" + type + "'; moe4j reads GGUF models with"
                    + " RoPE scaling none or linear");
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
