package dev.moe4j.model;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.model.transformer.WeightSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static dev.moe4j.model.TinyModels.config;
import static dev.moe4j.model.TinyModels.logits;
import static dev.moe4j.model.TinyModels.tokens;
import static dev.moe4j.model.TinyModels.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Configurations beyond the fixtures, with random weights written through each family's checkpoint layout:
 * loading gives back the model that was saved, reduced precision computes what float32 computes on the rounded
 * weights, decoding with the cache gives the logits of the whole sequence, and a one-expert top-1 MoE is the
 * dense MLP of that expert.
 */
class ModelVariantsTest {
    @TempDir
    Path dir;

    private static Transformer random(ModelConfig config, long seed) {
        return new Transformer(config, new InitialWeights(0.3, seed));
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss"})
    void aSavedModelLoadsBackAsTheSameModel(String family) {
        Transformer model = random(config(family, ""), 7);
        ModelSaver.save(model, dir, family, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        int[] ids = tokens(18, 40, 1);
        try (TransformerModel loaded = ModelLoader.load(dir, dev.moe4j.core.backend.CpuBackend.INSTANCE,
                WeightMemory.MAPPED)) {
            assertEquals(model.config().toBuilder().family(family).build(), loaded.config());
            // The same arithmetic, up to the order of float sums (stacked vs per-expert weights, warm vs cold JIT).
            assertClose(values(logits(model, ids, 2)), logits(loaded.transformer(), ids, 2), 1e-5, family);
            // Asked to map, weights are used where they were mapped, in the stored dtype; only the selection bias
            // is copied.
            for (var e : loaded.transformer().tensors().entrySet()) {
                if (!e.getKey().endsWith("selection_bias")) {
                    assertTrue(e.getValue().segment().isMapped(), e.getKey() + " is mapped");
                }
            }
        }
    }

    /** Routers and options no Hugging Face family has, for moe4j's own format. */
    static java.util.stream.Stream<dev.moe4j.moe.MoeConfig> moe4jOnlyLayers() {
        return java.util.stream.Stream.of(
                dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                        .capacity(dev.moe4j.moe.dispatch.Capacity.vmoeFactor(1.0)).build(),
                dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                        .capacity(dev.moe4j.moe.dispatch.Capacity.vmoeFactor(2.0))
                        .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.PREDICTOR)
                        .predictor(new dev.moe4j.moe.router.PredictorOptions(6, true, 0, 0.5)).build(),
                dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                        .capacity(dev.moe4j.moe.dispatch.Capacity.vmoeFactor(2.0))
                        .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.PREDICTOR)
                        .predictor(new dev.moe4j.moe.router.PredictorOptions(0, false, 2, 1)).build(),
                dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.SOFT).slotsPerExpert(2).build(),
                dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).selectionBias(true).sharedExpert(8, true)
                        .noise(dev.moe4j.moe.router.Noise.learnedGaussian())
                        .capacity(dev.moe4j.moe.dispatch.Capacity.switchFactor(2)).build());
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("moe4jOnlyLayers")
    void aModelOfMoe4jsOwnOptionsSavesInMoe4jsFormatAndLoadsBack(dev.moe4j.moe.MoeConfig moe) {
        ModelConfig config = ModelConfig.builder().vocabSize(40).hiddenSize(16)
                .attention(dev.moe4j.model.config.AttentionConfig.Standard.of(4, 2, 4)).moeLayers(2).moe(moe)
                .maxPositions(64).build();
        Transformer model = random(config, 5);
        int[] ids = tokens(18, 40, 1);
        // One training pass estimates the expert-choice thresholds that inference routes by.
        model.forward(dev.moe4j.core.autograd.Graph.training(), ids, 2, null);
        ModelSaver.save(model, dir, ModelConfig.CUSTOM_FAMILY, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        try (TransformerModel loaded = ModelLoader.load(dir)) {
            assertEquals(config, loaded.config());
            assertClose(values(logits(model, ids, 2)), logits(loaded.transformer(), ids, 2), 1e-5, moe.router().name());
        }
        Transformer trainable = ModelLoader.loadForTraining(dir);
        assertClose(values(logits(model, ids, 2)), logits(trainable, ids, 2), 1e-5, "trainable " + moe.router());
        assertEquals(model.parameters().keySet(), trainable.parameters().keySet());
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss"})
    void aCheckpointLoadedForTrainingHasTheSameParametersAndLogits(String family) {
        Transformer model = random(config(family, ""), 9);
        ModelSaver.save(model, dir, family, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        Transformer trainable = ModelLoader.loadForTraining(dir);
        int[] ids = tokens(18, 40, 1);
        assertClose(values(logits(model, ids, 2)), logits(trainable, ids, 2), 1e-5, family);
        assertEquals(model.parameters().keySet(), trainable.parameters().keySet(), family);
        trainable.parameters().forEach((name, v) -> {
            assertTrue(v instanceof dev.moe4j.core.Parameter && !v.value().segment().isMapped(), name + " is a heap parameter");
            assertEquals(java.util.Arrays.toString(model.parameters().get(name).value().shape()),
                    java.util.Arrays.toString(v.value().shape()), name);
        });
    }

    @ParameterizedTest
    @CsvSource({"mixtral,BF16", "qwen3_moe,F16", "deepseek_v3,BF16", "gpt_oss,BF16"})
    void reducedPrecisionComputesWhatFloat32ComputesOnTheRoundedWeights(String family, DType dtype)
            throws IOException {
        Path low = Files.createDirectory(dir.resolve("low")), wide = Files.createDirectory(dir.resolve("wide"));
        // Small shards: a sharded checkpoint with an index.
        ModelSaver.save(random(config(family, ""), 3), low, family, dtype, 4096);
        assertTrue(Files.exists(low.resolve("model.safetensors.index.json")));
        int[] ids = tokens(20, 40, 2);
        try (TransformerModel reduced = ModelLoader.load(low)) {
            assertTrue(reduced.transformer().tensors().get("embed_tokens.weight").dtype() == dtype);
            ModelSaver.save(reduced.transformer(), wide, family, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
            // Both declare the reduced dtype, which sets how transformers rounds the rotary frequencies.
            Files.copy(low.resolve("config.json"), wide.resolve("config.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            try (TransformerModel widened = ModelLoader.load(wide)) {
                assertEquals(DType.F32, widened.transformer().tensors().get("embed_tokens.weight").dtype());
                assertClose(values(logits(widened.transformer(), ids, 2)), logits(reduced.transformer(), ids, 2),
                        1e-5, family + " " + dtype);
            }
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "mixtral|\"num_experts_per_tok\":1,\"sliding_window\":4,\"tie_word_embeddings\":true",
            "qwen2_moe|\"decoder_sparse_step\":2,\"use_sliding_window\":true,\"sliding_window\":5,\"max_window_layers\":3",
            "qwen3_moe|\"mlp_only_layers\":[0,2],\"attention_bias\":true",
            "olmoe|\"norm_topk_prob\":true,\"tie_word_embeddings\":true",
            "deepseek_v3|\"q_lora_rank\":null,\"first_k_dense_replace\":2,\"rope_interleave\":false",
            "deepseek_v3|\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,\"original_max_position_embeddings\":16,\"mscale\":1,\"mscale_all_dim\":1}",
            "gpt_oss|\"num_experts_per_tok\":1,\"layer_types\":[\"full_attention\",\"sliding_attention\",\"sliding_attention\"]"})
    void decodingWithTheCacheGivesTheLogitsOfTheWholeSequence(String family, String extra) {
        ModelConfig config = config(family, extra);
        Transformer model = random(config, 11);
        int[] ids = tokens(13, 40, 5);
        Tensor whole = logits(model, ids, 1);
        var state = model.newCache(ids.length);
        Tensor prompt = model.forward(Graph.inference(), state, Arrays.copyOf(ids, 5), false, null).logits().value();
        assertClose(values(whole.slice(0, 5)), prompt, 1e-5, family + " prompt");
        for (int t = 5; t < ids.length; t++) {
            Tensor step = model.forward(Graph.inference(), state, new int[] {ids[t]}, true, null).logits().value();
            assertClose(values(whole.slice(t, t + 1)), step, 1e-5, family + " position " + t);
        }
        // Two sequences side by side are two independent sequences.
        int[] two = new int[2 * ids.length];
        System.arraycopy(ids, 0, two, 0, ids.length);
        System.arraycopy(tokens(13, 40, 9), 0, two, ids.length, ids.length);
        assertClose(values(whole), logits(model, two, 2).slice(0, ids.length), 1e-5, family + " batch");
    }

    /**
     * Expert choice routed by its predictor decides each token by that token alone, so decoding one token at a time
     * against the cache gives the whole sequence's logits, as the threshold path does (its random initial weights
     * send a token to about half of the experts, or to two).
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 2})
    void expertChoiceDecodedByItsPredictorGivesTheLogitsOfTheWholeSequence(int topK) {
        var moe = dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                .capacity(dev.moe4j.moe.dispatch.Capacity.vmoeFactor(2.0))
                .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.PREDICTOR)
                .predictor(new dev.moe4j.moe.router.PredictorOptions(6, true, topK, 1)).build();
        ModelConfig config = ModelConfig.builder().vocabSize(40).hiddenSize(16)
                .attention(dev.moe4j.model.config.AttentionConfig.Standard.of(4, 2, 4)).moeLayers(2).moe(moe)
                .maxPositions(64).build();
        Transformer model = random(config, 7);
        int[] ids = tokens(13, 40, 5);
        Tensor whole = logits(model, ids, 1);
        var state = model.newCache(ids.length);
        for (int t = 0; t < ids.length; t++) {
            Tensor step = model.forward(Graph.inference(), state, new int[] {ids[t]}, true, null).logits().value();
            assertClose(values(whole.slice(t, t + 1)), step, 1e-5, "position " + t);
        }
    }

    @Test
    void aOneExpertTopOneMoeIsTheDenseMlpOfThatExpert() {
        ModelConfig moe = config("mixtral", "\"num_local_experts\":1,\"num_experts_per_tok\":1");
        Transformer sparse = random(moe, 5);
        // The same model with dense layers whose MLP is the expert: softmax over one expert gives it weight 1.
        ModelConfig dense = moe.toBuilder().family(ModelConfig.CUSTOM_FAMILY).denseLayers(24, 0, 1, 2).moe(null).build();
        Map<String, Tensor> weights = sparse.tensors();
        Transformer mlp = new Transformer(dense, new WeightSource() {
            @Override
            public Var weight(String name, int... shape) {
                String expert = name.replaceFirst("\\.mlp\\.(\\w+)_proj\\.weight$", ".moe.experts.$1_proj");
                Tensor t = weights.get(name);
                if (t == null) {
                    Tensor stacked = weights.get(expert.replaceFirst("(gate|up)_proj$", "gate_up_proj"));
                    t = expert.endsWith("down_proj") ? stacked.select(0)
                            : expert.endsWith("gate_proj") ? stacked.select(0).slice(0, 24) : stacked.select(0).slice(24, 48);
                }
                return Var.constant(t);
            }

            @Override
            public ExpertStorage expertStorage() {
                return ExpertStorage.STACKED;
            }
        });
        int[] ids = tokens(16, 40, 3);
        assertClose(values(logits(sparse, ids, 2)), logits(mlp, ids, 2), 1e-5, "one expert vs dense");
    }
}
