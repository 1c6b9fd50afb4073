package dev.moe4j.model.family;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;

/**
 * Fuzzes config.json through every family's mapper: the input is read as it is, and, when it is a JSON object, once
 * more as each supported {@code model_type}, so that every mapper sees every mutation. A config that maps must also
 * be written back in its family's format (what saving a model does). Seeds: {@code ConfigJsonFuzzTestInputs/} (the
 * fixtures' config.json of every family and a moe4j-format one).
 */
class ConfigJsonFuzzTest {
    @FuzzTest
    @DictionaryEntries({"\"model_type\"", "\"hidden_size\"", "\"num_hidden_layers\"", "\"num_attention_heads\"",
            "\"num_key_value_heads\"", "\"head_dim\"", "\"intermediate_size\"", "\"moe_intermediate_size\"",
            "\"num_local_experts\"", "\"num_experts\"", "\"num_experts_per_tok\"", "\"n_routed_experts\"",
            "\"rope_theta\"", "\"rope_scaling\"", "\"vocab_size\"", "\"sliding_window\"", "\"layer_types\"",
            "\"mlp_only_layers\"", "\"decoder_sparse_step\"", "\"n_group\"", "\"topk_group\"",
            "\"first_k_dense_replace\"", "\"kv_lora_rank\"", "\"q_lora_rank\"", "\"qk_rope_head_dim\"",
            "\"torch_dtype\"", "\"eos_token_id\"", "\"losses\"", "\"capacity\"", "\"noise\"", "-1", "1e309", "null"})
    void anyConfigJsonMapsThroughEveryFamilyOrIsRefusedInOneLine(byte[] json) throws Exception {
        CleanRefusal.check(() -> read(Json.parse(json, "config.json")));
        JsonNode node;
        try {
            node = Json.parse(json, "config.json");
        } catch (BadInputException notJson) {
            return;
        }
        if (node instanceof ObjectNode object) {
            for (HfFamily family : HfFamilies.ALL) {
                CleanRefusal.check(() -> read(object.deepCopy().put("model_type", family.modelType())));
            }
        }
    }

    private static void read(JsonNode node) {
        ModelConfig config = HfFamilies.read(node, "config.json");
        HfFamilies.toJson(config);
    }
}
