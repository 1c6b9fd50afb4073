package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.LoadOptions;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --quantize TYPE} holds a safetensors model's weights as {@code convert --to gguf --type TYPE} writes them:
 * every weight in the same type, the same blocks, so the two compute the same logits.
 */
class LoadQuantizationTest {
    @TempDir
    Path dir;

    /** Rows of 256 (hidden, expert width, heads x head width), so the K-quants apply and their rules differ by layer. */
    private Path model() {
        var config = TinyModels.config("qwen3_moe", "\"hidden_size\":256,\"moe_intermediate_size\":256,"
                + "\"head_dim\":64,\"num_hidden_layers\":8");
        var model = new Transformer(config, new InitialWeights(0.05, 4));
        Path folder = dir.resolve("model");
        ModelSaver.save(model, folder, "qwen3_moe", DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        return folder;
    }

    @ParameterizedTest
    @EnumSource(names = {"Q8_0", "Q4_K_M", "MXFP4_MOE"})
    void weightsQuantisedAsLoadedAreTheConvertedFilesWeights(GgufFileType type) {
        Path folder = model(), gguf = dir.resolve("model.gguf");
        GgufConverter.convert(folder, gguf, Optional.of(type));
        var options = new LoadOptions(WeightMemory.COPIED, Optional.of(type));
        try (TransformerModel loaded = ModelLoader.load(folder, CpuBackend.INSTANCE, options);
             TransformerModel converted = ModelLoader.load(gguf, CpuBackend.INSTANCE, WeightMemory.COPIED)) {
            Map<String, Tensor> a = loaded.transformer().tensors(), b = converted.transformer().tensors();
            assertEquals(b.keySet(), a.keySet());
            int quantised = 0;
            for (String name : a.keySet()) {
                assertEquals(b.get(name).dtype(), a.get(name).dtype(), name);
                quantised += a.get(name).dtype().isBlockQuantized() ? 1 : 0;
            }
            assertTrue(quantised > 8 * 4, type + ": " + quantised + " quantised weights");
            double difference = TinyModels.relativeLogitsDifference(loaded.transformer(), converted.transformer(),
                    TinyModels.tokens(12, 40, 3), 2);
            assertTrue(difference <= 1e-5, type + ": relative logits difference " + difference);
        }
    }

    @Test
    void aGgufFileIsNotQuantisedAgainAsItLoads() {
        Path folder = model(), gguf = dir.resolve("model.gguf");
        GgufConverter.convert(folder, gguf, Optional.empty());
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(gguf, CpuBackend.INSTANCE,
                new LoadOptions(WeightMemory.COPIED, Optional.of(GgufFileType.Q8_0))));
        assertTrue(e.getMessage().contains("a GGUF file keeps its own types (moe4j quantize IN.gguf OUT.gguf q8_0"),
                e.getMessage());
    }
}
