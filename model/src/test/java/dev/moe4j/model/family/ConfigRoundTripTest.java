package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.Resources;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.loss.SwitchLoss;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** A ModelConfig saved as its family's config.json reads back as the same ModelConfig. */
class ConfigRoundTripTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"fixtures/mixtral/config.json", "fixtures/mixtral-bf16-sharded/config.json",
            "fixtures/qwen2-moe/config.json", "fixtures/qwen3-moe/config.json", "fixtures/olmoe/config.json",
            "fixtures/deepseek-v3/config.json", "fixtures/gpt-oss/config.json",
            "published/mixtral-8x7b.json", "published/qwen3-30b-a3b.json", "published/olmoe-1b-7b-0924.json",
            "published/deepseek-v3.json", "published/gpt-oss-120b.json", "published/qwen1.5-moe-a2.7b.json"})
    void savedConfigReadsBackUnchanged(String resource) {
        ModelConfig original = HfFamilies.load(Resources.path(resource));
        // The families do not write a quantisation method: moe4j saves the weights it holds, unquantised.
        ModelConfig expected = original.toBuilder().quantization(null).build();
        Path file = dir.resolve("config.json");
        HfFamilies.save(original, file);
        assertEquals(expected, HfFamilies.load(file));
        ObjectNode written = (ObjectNode) Json.read(file);
        assertTrue(written.has("rope_theta") && !written.has("rope_parameters"), "the form every loader reads");
        assertEquals(original.family(), written.get("model_type").asText());
    }

    @Test
    void aConfigBuiltInCodeSavesAsMixtral() {
        ModelConfig config = ModelConfig.builder().family("mixtral").vocabSize(100).hiddenSize(32)
                .attention(AttentionConfig.Standard.of(4, 2, 8)).moeLayers(3)
                .moe(MoeConfig.builder(32, 48, 4, 2).normalizeTopK(true)
                        .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.01).build()).build();
        Path file = dir.resolve("config.json");
        HfFamilies.save(config, file);
        assertEquals(config.toBuilder().tokens(config.tokens()).build(), HfFamilies.load(file));
    }

    @Test
    void aFamilyRefusesWhatItsConfigCannotExpress() {
        ModelConfig deepseek = HfFamilies.load(Resources.path("fixtures/deepseek-v3/config.json"));
        var e = assertThrows(BadInputException.class, () -> HfFamilies.toJson(deepseek, "mixtral"));
        assertTrue(e.getMessage().startsWith("cannot save as mixtral: "), e.getMessage());
        ModelConfig qwen2 = HfFamilies.load(Resources.path("fixtures/qwen2-moe/config.json"));
        assertThrows(BadInputException.class, () -> HfFamilies.toJson(qwen2, "olmoe"));
        assertThrows(BadInputException.class, () -> HfFamilies.toJson(qwen2, "llama"));
        ModelConfig custom = qwen2.toBuilder().family(ModelConfig.CUSTOM_FAMILY).build();
        assertThrows(BadInputException.class, () -> HfFamilies.toJson(custom));
        // MoE options that no config.json has a field for are refused, not dropped.
        ModelConfig capped = qwen2.toBuilder().moe(qwen2.moe().orElseThrow().toBuilder()
                .capacity(Capacity.switchFactor(1.25)).build()).build();
        var capacity = assertThrows(BadInputException.class, () -> HfFamilies.toJson(capped));
        assertTrue(capacity.getMessage().contains("expert capacity"), capacity.getMessage());
    }
}
