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
                "field 'num_experts_per_tok' (9) must not exceed num_local_experts (8)");
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
        assertRefused(deepseek + ",\"n_group\":3}", "field 'n_group' (3) must divide n_routed_experts (8)");
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

    /** A fixture's config.json with one field set to a value that does not fit. */
    record Misfit(String fixture, String field, Object value, String expected) {
        @Override
        public String toString() {
            return fixture + " " + field + "=" + value;
        }
    }

    static final java.util.List<Misfit> MISFITS = java.util.List.of(
            new Misfit("mixtral", "num_experts_per_tok", 9, "(9) must not exceed num_local_experts (8)"),
            new Misfit("qwen2-moe", "num_experts_per_tok", 9, "(9) must not exceed num_experts (8)"),
            new Misfit("qwen3-moe", "num_experts_per_tok", 17, "(17) must not exceed num_local_experts (16)"),
            new Misfit("olmoe", "num_experts_per_tok", 17, "(17) must not exceed num_experts (16)"),
            new Misfit("deepseek-v3", "num_experts_per_tok", 17, "(17) must not exceed n_routed_experts (16)"),
            new Misfit("gpt-oss", "num_experts_per_tok", 9, "(9) must not exceed num_local_experts (8)"),
            new Misfit("mixtral", "sliding_window", -4, "must be 0 or more (0 or null: none), got -4"),
            new Misfit("gpt-oss", "sliding_window", -4, "must be 0 or more (0 or null: none), got -4"),
            new Misfit("mixtral", "rms_norm_eps", 0.0, "must be a positive number, got 0.0"),
            new Misfit("qwen3-moe", "rms_norm_eps", -1.0, "must be a positive number, got -1.0"),
            new Misfit("mixtral", "router_jitter_noise", 2.0, "must be in [0, 1), got 2.0"),
            new Misfit("deepseek-v3", "routed_scaling_factor", 0.0, "must be a positive number, got 0.0"),
            new Misfit("deepseek-v3", "n_group", 3, "(3) must divide n_routed_experts (16)"),
            new Misfit("deepseek-v3", "q_lora_rank", -1, "must be 0 or more (0 or null: none), got -1"));

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.FieldSource("MISFITS")
    void aFieldThatDoesNotFitIsNamedAsConfigJsonSpellsIt(Misfit m) throws IOException {
        var config = (com.fasterxml.jackson.databind.node.ObjectNode) Json.read(
                dev.moe4j.model.Resources.fixture(m.fixture()).resolve("config.json"));
        config.set(m.field(), Json.mapper().valueToTree(m.value()));
        Path file = dir.resolve("config.json");
        Files.writeString(file, config.toString());
        var e = assertThrows(BadInputException.class, () -> HfFamilies.load(file));
        assertEquals(file + ": field '" + m.field() + "' " + m.expected(), e.getMessage()
                .substring(0, Math.min(e.getMessage().length(), (file + ": field '" + m.field() + "' "
                        + m.expected()).length())), e.getMessage());
        assertFalse(java.util.regex.Pattern.compile("\\b[a-z]+[A-Z]\\w*").matcher(e.getMessage()
                .substring(file.toString().length())).find(), "no Java names: " + e.getMessage());
    }
}
