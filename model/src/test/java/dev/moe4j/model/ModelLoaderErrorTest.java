package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A model folder whose weights do not fit its config.json is refused before anything runs, with one line naming
 * the file and the tensor.
 */
class ModelLoaderErrorTest {
    @TempDir
    Path dir;
    private Path weights;

    @BeforeEach
    void saveAModel() {
        var model = new Transformer(TinyModels.config("qwen2_moe", ""), new InitialWeights(0.1, 1));
        ModelSaver.save(model, dir, "qwen2_moe", DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        weights = dir.resolve("model.safetensors");
    }

    /** Rewrites model.safetensors after {@code change} edits its tensors (copied to the heap first). */
    private void rewrite(Consumer<Map<String, Tensor>> change) {
        var tensors = new LinkedHashMap<String, Tensor>();
        try (var reader = SafetensorsReader.open(weights)) {
            reader.names().forEach(n -> tensors.put(n, reader.tensor(n).copy()));
        }
        change.accept(tensors);
        SafetensorsWriter.write(weights, tensors);
    }

    private void assertRefused(String... expected) {
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(dir));
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        for (String part : expected) {
            assertTrue(e.getMessage().contains(part), "expected '" + part + "' in: " + e.getMessage());
        }
    }

    @Test
    void aMissingTensorIsNamed() {
        rewrite(t -> t.remove("model.layers.1.mlp.experts.3.up_proj.weight"));
        assertRefused(dir.toString(), "missing tensor 'model.layers.1.mlp.experts.3.up_proj.weight' of shape [12, 16]");
    }

    @Test
    void aTensorOfAnotherShapeIsNamedWithBothShapes() {
        rewrite(t -> t.put("model.layers.0.self_attn.k_proj.weight", Tensor.zeros(16, 16)));
        assertRefused(weights.toString(), "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 16]; "
                + "config.json implies [8, 16]");
    }

    @Test
    void aTensorTheModelDoesNotHaveIsRefused() {
        rewrite(t -> {
            t.put("model.layers.0.self_attn.extra.weight", Tensor.zeros(2));
            t.put("model.layers.7.mlp.gate.weight", Tensor.zeros(2));
        });
        assertRefused(weights.toString(), "unexpected tensor 'model.layers.0.self_attn.extra.weight'", "(and 1 more)");
    }

    @Test
    void weightsTheKernelsCannotReadAreRefused() {
        rewrite(t -> t.put("model.norm.weight", Tensor.zeros(DType.I32, 16)));
        assertRefused(weights.toString(), "tensor 'model.norm.weight' is I32; moe4j reads F32, BF16 and F16 weights");
    }

    @Test
    void unknownQuantisationsBadFp8OptionsAndFoldersWithoutConfigAreRefused() throws IOException {
        String config = Files.readString(dir.resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), config.replaceFirst("\\{",
                "{\"quantization_config\":{\"quant_method\":\"gptq\"},"));
        assertRefused("config.json", "quantization_config.quant_method 'gptq' is not read by moe4j");
        Files.writeString(dir.resolve("config.json"), config.replaceFirst("\\{",
                "{\"quantization_config\":{\"quant_method\":\"fp8\"},"));
        assertRefused("config.json", "quantization_config.weight_block_size must be two positive integers");
        Files.writeString(dir.resolve("config.json"), config.replaceFirst("\\{",
                "{\"quantization_config\":{\"quant_method\":\"fp8\",\"weight_block_size\":[128,128],"
                        + "\"activation_scheme\":\"static\"},"));
        assertRefused("config.json", "activation_scheme 'static'");
        Files.delete(dir.resolve("config.json"));
        assertRefused(dir + ": no config.json in this folder");
        assertThrows(BadInputException.class, () -> ModelLoader.load(weights));
    }

    @Test
    void aTiedLmHeadStoredAnywayAndRotaryBuffersAreAccepted() throws IOException {
        String config = Files.readString(dir.resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), config.replaceFirst("\"tie_word_embeddings\"\\s*:\\s*false",
                "\"tie_word_embeddings\": true"));
        rewrite(t -> t.put("model.layers.0.self_attn.rotary_emb.inv_freq", Tensor.zeros(2)));
        try (var model = ModelLoader.load(dir)) {
            assertTrue(model.config().tieEmbeddings());
        }
    }

    /** Logits of one pass over a few tokens through the model this folder holds. */
    private void forward() {
        try (TransformerModel model = ModelLoader.load(dir)) {
            model.forward(model.newState(8), new int[] {1, 2, 3}, false, null);
        }
    }

    @Test
    void aNaNWeightIsRefusedByNameAtTheFirstPassThatReadsIt() {
        rewrite(t -> t.get("model.layers.0.self_attn.q_proj.weight").setFloat(5, Float.NaN));
        var e = assertThrows(BadInputException.class, this::forward);
        assertEquals(weights + ": tensor 'model.layers.0.self_attn.q_proj.weight' [16, 16] holds NaN at element 5:"
                + " the checkpoint is damaged (its weights must be finite numbers)", e.getMessage());
    }

    @Test
    void anInfiniteWeightThatSpoilsOneLogitOnlyIsFoundToo() {
        // a row of the LM head: only its own logit is infinite, which the first pass's full look sees
        String head = "lm_head.weight";
        rewrite(t -> t.get(head).setFloat(3 * 16 + 2, Float.POSITIVE_INFINITY));
        var e = assertThrows(BadInputException.class, this::forward);
        assertTrue(e.getMessage().contains("tensor '" + head + "'") && e.getMessage().contains("Infinity at element 50"),
                e.getMessage());
    }
}
