package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.transformer.RandomWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/** {@link GgufConverter#writeRandom}: a GGUF of random weights computed as it is written. */
class RandomGgufTest {
    @TempDir
    Path dir;

    private static final String COMMON = "\"vocab_size\": 512, \"hidden_size\": 256, \"num_hidden_layers\": 3,"
            + " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"num_experts_per_tok\": 2,"
            + " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0,"
            + " \"tie_word_embeddings\": false";

    private static ModelConfig qwen3() {
        return config("{\"model_type\": \"qwen3_moe\", " + COMMON + ", \"head_dim\": 128, \"num_experts\": 4,"
                + " \"moe_intermediate_size\": 256, \"intermediate_size\": 768, \"norm_topk_prob\": true,"
                + " \"decoder_sparse_step\": 1, \"mlp_only_layers\": []}");
    }

    private static ModelConfig mixtral() {
        return config("{\"model_type\": \"mixtral\", " + COMMON + ", \"num_local_experts\": 8,"
                + " \"intermediate_size\": 256}");
    }

    /** gpt-oss's layout: biases and sinks, a window on the even layers, YaRN. */
    private static ModelConfig gptOss() {
        return config("{\"model_type\": \"gpt_oss\", " + COMMON + ", \"head_dim\": 64, \"num_local_experts\": 4,"
                + " \"intermediate_size\": 256, \"sliding_window\": 4}");
    }

    /** DeepSeek-V3's: latent attention, a leading dense layer, groups, a shared expert, YaRN with mscale. */
    private static ModelConfig deepseekV3() {
        return config("{\"model_type\": \"deepseek_v3\", " + COMMON + ", \"n_routed_experts\": 8,"
                + " \"moe_intermediate_size\": 256, \"intermediate_size\": 512, \"n_shared_experts\": 1,"
                + " \"q_lora_rank\": 128, \"kv_lora_rank\": 64, \"qk_nope_head_dim\": 32, \"qk_rope_head_dim\": 16,"
                + " \"v_head_dim\": 64, \"n_group\": 4, \"topk_group\": 2, \"first_k_dense_replace\": 1,"
                + " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 64,"
                + " \"mscale\": 1.0, \"mscale_all_dim\": 1.0}}");
    }

    private static ModelConfig config(String json) {
        return HfFamilies.read(Json.parse(json, "test"), "test");
    }

    private static byte[] bytes(Tensor t) {
        byte[] b = new byte[(int) t.byteSize()];
        MemorySegment.copy(t.segment(), 0, MemorySegment.ofArray(b), 0, b.length);
        return b;
    }

    /** writeRandom's file against make-model's path: the same weights saved as an F32 folder, then converted. */
    private void assertSameAsFolderConverted(ModelConfig config, GgufFileType type) {
        long seed = 11;
        Path folder = dir.resolve("model");
        ModelSaver.save(new Transformer(config, new RandomWeights(config, seed)), folder, config.family(), DType.F32,
                ModelSaver.DEFAULT_SHARD_BYTES);
        Path converted = dir.resolve("converted.gguf");
        GgufConverter.convert(folder, converted, Optional.of(type));
        Path direct = dir.resolve("model.gguf");
        var result = GgufConverter.writeRandom(config, "test", seed, direct, type);
        assertEquals(type, result.fileType());

        var model = new GgufFileType.Model(config.numLayers(), config.moe().orElseThrow().experts(), false);
        try (var expected = GgufReader.open(converted); var actual = GgufReader.open(direct)) {
            assertEquals(expected.metadata().entries(), actual.metadata().entries());
            assertEquals(expected.tensors().size(), actual.tensors().size());
            assertEquals(result.tensors(), actual.tensors().size());
            for (int i = 0; i < expected.tensors().size(); i++) {
                GgufTensorInfo e = expected.tensors().get(i), a = actual.tensors().get(i);
                assertEquals(e.name(), a.name());
                assertArrayEquals(e.shape(), a.shape(), a.name());
                GgmlType wanted = GgufFileType.quantizable(a.name(), a.shape())
                        ? type.typeOf(a.name(), a.shape(), model) : GgmlType.F32;
                assertEquals(wanted, a.type(), a.name());
                assertArrayEquals(bytes(expected.tensor(e.name())), bytes(actual.tensor(a.name())), a.name());
            }
        }
    }

    @Test
    void aQwen3MoeInQ4KMIsTheFolderOfTheSameSeedConverted() {
        assertSameAsFolderConverted(qwen3(), GgufFileType.Q4_K_M);
    }

    @Test
    void aMixtralInQ8_0IsTheFolderOfTheSameSeedConvertedWithItsQueryRowsPaired() {
        assertSameAsFolderConverted(mixtral(), GgufFileType.Q8_0);
    }

    @Test
    void aGptOssInMxfp4IsTheFolderOfTheSameSeedConvertedWithGateAndUpSplitFromItsInterleavedExperts() {
        // the folder holds gpt-oss's transposed, interleaved gate_up_proj; the direct file is written per expert
        assertSameAsFolderConverted(gptOss(), GgufFileType.MXFP4_MOE);
    }

    @Test
    void aDeepseekV3InQ4KMIsTheFolderOfTheSameSeedConvertedWithItsKvBSplit() {
        assertSameAsFolderConverted(deepseekV3(), GgufFileType.Q4_K_M);
    }

    @Test
    void anF16FileHoldsTheRandomWeightsRounded() {
        ModelConfig config = qwen3();
        Path file = dir.resolve("f16.gguf");
        GgufConverter.writeRandom(config, "test", 3, file, GgufFileType.F16);
        var random = new RandomWeights(config, 3);
        try (var reader = GgufReader.open(file)) {
            assertEquals("qwen3moe", reader.metadata().get("general.architecture").orElseThrow().stringValue());
            assertEquals(3, reader.metadata().get("qwen3moe.block_count").orElseThrow().longValue());
            assertEquals(512, reader.metadata().get("tokenizer.ggml.tokens").orElseThrow().elements().size());
            Tensor down = reader.tensor("blk.2.ffn_down_exps.weight");
            assertEquals(DType.F16, down.dtype());
            assertArrayEquals(new int[] {4, 256, 256}, down.shape());
            float[] third = new float[256 * 256];
            random.fill("layers.2.moe.experts.3.down_proj.weight", new int[] {256, 256}, 0, third, third.length);
            for (int i = 0; i < third.length; i++) {
                assertEquals(Tensor.of(new float[] {third[i]}, 1).to(DType.F16).getFloat(0),
                        down.getFloat(3L * 256 * 256 + i), "element " + i);
            }
            assertEquals(DType.F32, reader.tensor("blk.0.ffn_gate_inp.weight").dtype());
            assertEquals(1f, reader.tensor("blk.1.attn_q_norm.weight").getFloat(5));
        }
    }

    @Test
    void aFamilyLlamaCppCannotRunIsRefusedAndNothingIsWritten() {
        ModelConfig olmoe = config("{\"model_type\": \"olmoe\", " + COMMON + ", \"num_experts\": 4,"
                + " \"intermediate_size\": 256}");
        Path file = dir.resolve("olmoe.gguf");
        var e = assertThrows(BadInputException.class,
                () -> GgufConverter.writeRandom(olmoe, "the make-model flags", 1, file, GgufFileType.Q8_0));
        // llama.cpp's olmoe sizes the key norm to the model's width, so grouped-query OLMoE is refused
        assertTrue(e.getMessage().startsWith("the make-model flags: the model has grouped-query attention"),
                e.getMessage());
        assertFalse(Files.exists(file));
    }

    @Test
    void randomValuesDependOnTheirIndexAloneAndHaveTheWeightsScale() {
        var random = new RandomWeights(qwen3(), 5);
        int[] shape = {256, 256};
        String name = "layers.0.moe.experts.1.gate_proj.weight";
        float[] whole = new float[256 * 256];
        random.fill(name, shape, 0, whole, whole.length);
        float[] middle = new float[1000];
        random.fill(name, shape, 12_345, middle, middle.length);
        for (int i = 0; i < middle.length; i++) {
            assertEquals(whole[12_345 + i], middle[i]);
        }
        double sum = 0, squares = 0;
        for (float v : whole) {
            sum += v;
            squares += (double) v * v;
        }
        double mean = sum / whole.length, std = Math.sqrt(squares / whole.length - mean * mean);
        assertEquals(0, mean, 0.003);
        assertEquals(1 / Math.sqrt(256), std, 0.003, "experts' inputs are N(0, 1/hidden)");
        float[] other = new float[whole.length];
        new RandomWeights(qwen3(), 6).fill(name, shape, 0, other, other.length);
        assertFalse(java.util.Arrays.equals(whole, other), "another seed gives other weights");
    }
}
