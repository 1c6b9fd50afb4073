package dev.moe4j.model;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;

/** Small configs of every family, written as their config.json would be, for tests with random weights. */
public final class TinyModels {
    private TinyModels() {
    }

    /** A config.json of {@code family} with small sizes; {@code extra} adds or overrides fields ("" for none). */
    public static ModelConfig config(String family, String extra) {
        String base = switch (family) {
            case "mixtral" -> "\"num_local_experts\":4,\"num_experts_per_tok\":2,\"intermediate_size\":24";
            case "qwen2_moe" -> "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12,"
                    + "\"shared_expert_intermediate_size\":20,\"intermediate_size\":28,\"qkv_bias\":true";
            case "qwen3_moe" -> "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12,"
                    + "\"head_dim\":6,\"intermediate_size\":28,\"norm_topk_prob\":true";
            case "olmoe" -> "\"num_experts\":4,\"num_experts_per_tok\":2,\"intermediate_size\":12,\"clip_qkv\":0.5";
            case "deepseek_v3" -> "\"n_routed_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12,"
                    + "\"n_group\":2,\"topk_group\":1,\"first_k_dense_replace\":1,\"intermediate_size\":28,"
                    + "\"q_lora_rank\":12,\"kv_lora_rank\":10,\"qk_nope_head_dim\":4,\"qk_rope_head_dim\":4,"
                    + "\"v_head_dim\":6,\"n_shared_experts\":1";
            case "gpt_oss" -> "\"num_local_experts\":4,\"num_experts_per_tok\":2,\"intermediate_size\":12,"
                    + "\"head_dim\":8,\"sliding_window\":3";
            default -> throw new IllegalArgumentException(family);
        };
        String json = "{\"model_type\":\"" + family + "\",\"hidden_size\":16,\"num_attention_heads\":4,"
                + "\"num_key_value_heads\":2,\"num_hidden_layers\":3,\"vocab_size\":40,\"max_position_embeddings\":64,"
                + "\"rms_norm_eps\":1e-6," + base + "}";
        var fields = (ObjectNode) Json.parse(json, family);
        fields.setAll((ObjectNode) Json.parse("{" + extra + "}", family + " extra fields"));
        return HfFamilies.read(fields, family + " test config");
    }

    public static final String[] FAMILIES = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss"};

    /** Token ids 0..vocab-1 in a fixed scrambled order. */
    public static int[] tokens(int count, int vocab, int seed) {
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            out[i] = (int) (((long) (i + 1) * 7919 + seed * 104729L) % vocab);
        }
        return out;
    }

    /** The logits of whole sequences through an inference graph. */
    public static Tensor logits(dev.moe4j.model.transformer.Transformer model, int[] tokens, int sequences) {
        return model.forward(Graph.inference(), tokens, sequences, null).logits().value();
    }

    public static double[] values(Tensor t) {
        double[] out = new double[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    /** max|a - b| / max|b| over two models' logits of the same sequences: moe4j's measure of agreement. */
    public static double relativeLogitsDifference(dev.moe4j.model.transformer.Transformer a,
                                                  dev.moe4j.model.transformer.Transformer b, int[] tokens,
                                                  int sequences) {
        double[] x = values(logits(a, tokens, sequences)), y = values(logits(b, tokens, sequences));
        double diff = 0, max = 0;
        for (int i = 0; i < x.length; i++) {
            diff = Math.max(diff, Math.abs(x[i] - y[i]));
            max = Math.max(max, Math.abs(y[i]));
        }
        return diff / max;
    }
}
