package dev.moe4j.model.family;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** A config.json moe4j cannot use is refused with one line naming the file and the field. */
class ConfigErrorTest {
    @TempDir
    Path dir;

    private static final String MIXTRAL = "{\"model_type\":\"mixtral\",\"hidden_size\":64,\"num_attention_heads\":4,"
            + "\"num_hidden_layers\":2,\"num_local_experts\":8,\"vocab_size\":100,\"num_key_value_heads\":2";

    private void assertRefused(String json, String expected) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, json);
        var e = assertThrows(BadInputException.class, () -> HfFamilies.load(file));
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }

    @Test
    void unknownOrMissingModelTypeListsTheSupportedFamilies() throws IOException {
        assertRefused("{\"model_type\":\"llama\"}", "unsupported model_type 'llama'; supported: mixtral, "
                + "qwen2_moe, qwen3_moe, olmoe, deepseek_v3, gpt_oss");
        assertRefused("{\"hidden_size\":4}", "missing required field 'model_type'");
        assertRefused("[1]", "expected a JSON object");
        assertRefused("{\"model_type\":", "not valid JSON");
    }

    @Test
    void missingOrIllTypedFieldsAreNamed() throws IOException {
        assertRefused("{\"model_type\":\"mixtral\",\"hidden_size\":64}", "missing required field 'num_attention_heads'");
        assertRefused(MIXTRAL.replace("\"hidden_size\":64", "\"hidden_size\":\"64\"") + "}",
                "field 'hidden_size' must be an integer, got the string \"64\"");
        assertRefused(MIXTRAL + ",\"num_experts_per_tok\":0}", "field 'num_experts_per_tok' must be positive");
        assertRefused(MIXTRAL.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3") + "}",
                "field 'num_key_value_heads' must be positive and divide");
        assertRefused(MIXTRAL + ",\"rms_norm_eps\":true}", "field 'rms_norm_eps' must be a number");
        assertRefused(MIXTRAL + ",\"tie_word_embeddings\":\"no\"}", "field 'tie_word_embeddings' must be true or false");
        assertRefused(MIXTRAL + ",\"hidden_act\":\"mish\"}", "field 'hidden_act' 'mish' is not supported");
        assertRefused(MIXTRAL + ",\"torch_dtype\":\"int4\"}", "field 'torch_dtype' names an unknown dtype 'int4'");
        assertRefused(MIXTRAL + ",\"num_experts_per_tok\":9}",
                "inconsistent config: moe config: topK must be between 1 and experts (8), got 9");
        assertRefused(MIXTRAL + ",\"num_experts\":4}", "fields 'num_local_experts' (8) and 'num_experts' (4)");
    }

    @Test
    void ropeProblemsNameTheRopeObject() throws IOException {
        assertRefused(MIXTRAL + ",\"rope_scaling\":{\"type\":\"ntk-by-parts\",\"factor\":2}}",
                "field 'rope_scaling.type' 'ntk-by-parts' is not a supported rope type");
        assertRefused(MIXTRAL + ",\"rope_scaling\":{\"rope_type\":\"yarn\"}}", "missing required field 'rope_scaling.factor'");
        assertRefused(MIXTRAL + ",\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":-1}}",
                "field 'rope_parameters.factor' must be positive");
        assertRefused(MIXTRAL + ",\"rope_theta\":0}", "field 'rope_theta' must be positive");
    }

    @Test
    void familyRulesAreEnforced() throws IOException {
        String deepseek = "{\"model_type\":\"deepseek_v3\",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"num_hidden_layers\":2,\"n_routed_experts\":8,\"vocab_size\":100,\"topk_group\":1,"
                + "\"num_experts_per_tok\":2";
        assertRefused(deepseek + ",\"n_group\":2,\"scoring_func\":\"softmax\"}", "field 'scoring_func' is 'softmax'; deepseek_v3 supports 'sigmoid' only");
        assertRefused(deepseek + ",\"n_group\":3}", "groupLimit.groups (3) must divide experts (8)");
        assertRefused("{\"model_type\":\"gpt_oss\",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"num_hidden_layers\":2,\"num_local_experts\":4,\"vocab_size\":10,\"num_key_value_heads\":2,"
                + "\"layer_types\":[\"full_attention\"]}", "field 'layer_types' has 1 entries for 2 layers");
        assertRefused("{\"model_type\":\"qwen2_moe\",\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"num_hidden_layers\":2,\"num_experts\":4,\"vocab_size\":10,\"num_key_value_heads\":4,"
                + "\"mlp_only_layers\":[5]}",
                "field 'mlp_only_layers' lists layer 5 of a 2-layer model");
    }

    @Test
    void aMissingFileIsNamed() {
        Path file = dir.resolve("nope.json");
        var e = assertThrows(BadInputException.class, () -> HfFamilies.load(file));
        assertEquals(file + ": no such file", e.getMessage());
        assertNotNull(Json.mapper());
    }
}
