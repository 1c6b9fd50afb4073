package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class GenerationConfigTest {
    @TempDir
    Path dir;

    private static GenerationConfig parse(String json) {
        return GenerationConfig.read(Json.parse(json, "generation_config.json"), "generation_config.json");
    }

    @Test
    void eosTokenIdMayBeOneIdOrAList() {
        assertEquals(List.of(2), parse("{\"eos_token_id\": 2}").eosTokenIds());
        assertEquals(List.of(151645, 151643), parse("{\"eos_token_id\": [151645, 151643]}").eosTokenIds());
        assertEquals(List.of(), parse("{\"eos_token_id\": null}").eosTokenIds());
        assertEquals(List.of(), parse("{}").eosTokenIds());
    }

    @Test
    void aTransformersWrittenFileWithOnlyTokenIdsSetsNoSamplingValues() {
        var g = parse("""
                {"_from_model_config": true, "bos_token_id": 1, "eos_token_id": 2, "output_attentions": false,
                 "output_hidden_states": false, "transformers_version": "5.17.0", "use_cache": true}""");
        assertTrue(g.doSample().isEmpty());
        assertTrue(g.temperature().isEmpty());
        assertTrue(g.topK().isEmpty());
        assertEquals(List.of(2), g.eosTokenIds());
    }

    @Test
    void aMissingFileIsNoConfig() {
        assertEquals(GenerationConfig.none(), GenerationConfig.loadFrom(dir));
    }

    @Test
    void badValuesNameTheFileAndTheField() {
        var e = assertThrows(BadInputException.class, () -> parse("{\"top_p\": 1.5}"));
        assertEquals("generation_config.json: field 'top_p' must be between 0 and 1, got 1.5", e.getMessage());
        e = assertThrows(BadInputException.class, () -> parse("{\"eos_token_id\": \"</s>\"}"));
        assertTrue(e.getMessage().contains("'eos_token_id'"), e.getMessage());
        e = assertThrows(BadInputException.class, () -> parse("{\"temperature\": -1}"));
        assertTrue(e.getMessage().contains("'temperature' must not be negative"), e.getMessage());
        e = assertThrows(BadInputException.class, () -> parse("{\"do_sample\": \"yes\"}"));
        assertTrue(e.getMessage().contains("'do_sample' must be true or false"), e.getMessage());
    }

    @Test
    void aCorruptFileIsAOneLineErrorNamingIt() throws Exception {
        Files.writeString(dir.resolve(GenerationConfig.FILE), "{\"do_sample\": tru");
        var e = assertThrows(BadInputException.class, () -> GenerationConfig.loadFrom(dir));
        assertTrue(e.getMessage().startsWith(dir.resolve(GenerationConfig.FILE) + ": not valid JSON"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }
}
