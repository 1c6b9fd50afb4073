package dev.moe4j.model.family;

import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every tensor transformers saved maps to one of moe4j's weights and back to its own name. */
class TensorNamesTest {
    @ParameterizedTest
    @CsvSource({"mixtral,mixtral", "mixtral-bf16-sharded,mixtral", "qwen2-moe,qwen2_moe", "qwen3-moe,qwen3_moe",
            "olmoe,olmoe", "deepseek-v3,deepseek_v3", "gpt-oss,gpt_oss"})
    void checkpointNamesMapToMoe4jNamesAndBack(String fixture, String family) {
        TensorNames names = HfFamilies.find(family).orElseThrow().tensorNames();
        var dir = Resources.fixture(fixture);
        try (var checkpoint = Checkpoint.open(dir); var model = ModelLoader.load(dir)) {
            var mapped = new TreeSet<String>();
            for (String name : checkpoint.names()) {
                String moe4j = names.toMoe4j(name).orElseThrow(() -> new AssertionError("unmapped " + name));
                assertEquals(name, names.toCheckpoint(moe4j), moe4j);
                assertTrue(mapped.add(moe4j), "two tensors map to " + moe4j);
            }
            // ... and they are exactly the weights the model asked for.
            assertEquals(mapped, new TreeSet<>(model.transformer().tensors().keySet()));
        }
    }
}
