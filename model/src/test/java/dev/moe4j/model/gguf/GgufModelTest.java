package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensor;
import dev.moe4j.io.gguf.GgufValue;
import dev.moe4j.io.gguf.GgufWriter;
import dev.moe4j.io.gguf.GgufMetadata;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A model folder converted to GGUF and loaded back runs the same function: the tiny mixtral and qwen3-moe fixtures
 * give the folder's logits from an F32 GGUF, and the BF16 sharded fixture from a BF16 one; the vocabulary and the
 * chat template come back from the metadata.
 */
class GgufModelTest {
    private static final int[] PROMPT = {1, 17, 300, 42, 5, 511, 260, 99, 7, 128, 64, 3};

    @TempDir
    Path dir;

    /** The largest difference of any logit over the whole sequence, relative to the largest logit. */
    private static double maxRelativeDifference(Path folder, Path gguf, WeightMemory memory) {
        return maxRelativeDifference(folder, gguf, memory, 512);
    }

    private static double maxRelativeDifference(Path folder, Path gguf, WeightMemory memory, int vocab) {
        int[] prompt = java.util.Arrays.stream(PROMPT).map(id -> id % vocab).toArray();
        try (LanguageModel a = ModelLoader.load(folder, CpuBackend.INSTANCE, memory);
             LanguageModel b = ModelLoader.load(gguf, CpuBackend.INSTANCE, memory)) {
            Tensor expected = a.forward(a.newState(prompt.length), prompt, false, null);
            Tensor actual = b.forward(b.newState(prompt.length), prompt, false, null);
            assertArrayEquals(expected.shape(), actual.shape());
            double scale = 0, diff = 0;
            for (long i = 0; i < expected.size(); i++) {
                scale = Math.max(scale, Math.abs(expected.getFloat(i)));
                diff = Math.max(diff, Math.abs(expected.getFloat(i) - actual.getFloat(i)));
            }
            return diff / scale;
        }
    }

    @Test
    void anF32MixtralGgufGivesTheFolderModelsLogitsWithInterleavedRopeInsteadOfMovedRows() {
        Path folder = Resources.fixture("mixtral");
        Path gguf = dir.resolve("mixtral.gguf");
        GgufConverter.convert(folder, gguf, Optional.of(GgufFileType.F32));
        ModelConfig config = ModelLoader.config(gguf);
        assertEquals("mixtral", config.family());
        assertEquals(RopeConfig.Layout.INTERLEAVED, config.rope().layout(), "llama.cpp's rows are in pair order");
        ModelConfig stored = ModelLoader.config(folder);
        var moe = config.moe().orElseThrow();
        var storedMoe = stored.moe().orElseThrow();
        // Everything but the training loss's coefficient, which GGUF does not carry.
        assertEquals(storedMoe.toString().replaceAll("losses=.*, seed", "seed"),
                moe.toString().replaceAll("losses=.*, seed", "seed"));
        assertEquals(stored.attention(), config.attention());
        assertEquals(stored.norms(), config.norms());
        assertEquals(stored.rope().theta(), config.rope().theta());
        assertEquals(stored.tokens(), config.tokens());
        for (WeightMemory memory : List.of(WeightMemory.MAPPED, WeightMemory.COPIED)) {
            double d = maxRelativeDifference(folder, gguf, memory);
            assertTrue(d <= 1e-6, memory + ": logits differ by " + d + " relative");
        }
    }

    @Test
    void anF32Qwen3MoeGgufGivesTheFolderModelsLogits() {
        Path folder = Resources.fixture("qwen3-moe");
        Path gguf = dir.resolve("qwen3.gguf");
        GgufConverter.convert(folder, gguf, Optional.of(GgufFileType.F32));
        assertEquals("qwen3_moe", ModelLoader.config(gguf).family());
        double d = maxRelativeDifference(folder, gguf, WeightMemory.MAPPED);
        assertTrue(d <= 1e-6, "logits differ by " + d + " relative");
    }

    @ParameterizedTest
    @CsvSource({"qwen2_moe, qwen2moe, '\"num_key_value_heads\":2'",
            "olmoe, olmoe, '\"num_key_value_heads\":4,\"clip_qkv\":null'"})
    void qwen2MoeWithItsGatedSharedExpertAndOlmoeGiveTheFolderModelsLogits(String family, String architecture,
                                                                          String extra) {
        Path folder = dir.resolve(family);
        var model = new Transformer(TinyModels.config(family, extra), new InitialWeights(0.3, 11));
        ModelSaver.save(model, folder, family, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        Path gguf = dir.resolve(family + ".gguf");
        assertEquals(architecture, GgufConverter.convert(folder, gguf, Optional.empty()).architecture());
        ModelConfig config = ModelLoader.config(gguf);
        assertEquals(family, config.family());
        assertEquals(model.config().moe().orElseThrow().sharedIntermediate(),
                config.moe().orElseThrow().sharedIntermediate());
        if (family.equals("qwen2_moe")) {
            try (GgufReader r = GgufReader.open(gguf)) {
                assertArrayEquals(new int[] {16}, r.tensor("blk.0.ffn_gate_inp_shexp.weight").shape());
                assertArrayEquals(new int[] {8}, r.tensor("blk.2.attn_k.bias").shape());
            }
        }
        double d = maxRelativeDifference(folder, gguf, WeightMemory.MAPPED, 40);
        assertTrue(d <= 1e-6, "logits differ by " + d + " relative");
    }

    /** The logits of each sequence of the fixture's reference inputs (input_ids [batch, length]), laid end to end. */
    private static float[] referenceInputLogits(LanguageModel model, Tensor inputIds) {
        int batch = inputIds.dim(0), length = inputIds.dim(1), vocab = model.config().vocabSize();
        float[] out = new float[batch * length * vocab];
        for (int b = 0; b < batch; b++) {
            int[] ids = new int[length];
            for (int t = 0; t < length; t++) {
                ids[t] = (int) inputIds.getLong((long) b * length + t);
            }
            Tensor logits = model.forward(model.newState(length), ids, false, null);
            for (int i = 0; i < logits.size(); i++) {
                out[b * length * vocab + i] = logits.getFloat(i);
            }
        }
        return out;
    }

    /** max |a - b| / max |b|. */
    private static double relative(float[] a, float[] b) {
        double scale = 0, diff = 0;
        for (int i = 0; i < b.length; i++) {
            scale = Math.max(scale, Math.abs(b[i]));
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
        }
        return diff / scale;
    }

    /** The config with YaRN's correction range rounded to whole dimensions, as llama.cpp always computes it. */
    private static ModelConfig truncatedYarn(ModelConfig config) {
        if (!(config.rope().scaling() instanceof RopeConfig.Yarn y)) {
            return config;
        }
        var r = config.rope();
        var yarn = new RopeConfig.Yarn(y.factor(), y.originalMaxPositions(), y.betaFast(), y.betaSlow(), y.mscale(),
                y.mscaleAllDim(), y.attentionFactor(), true);
        return config.toBuilder().rope(new RopeConfig(r.theta(), yarn, r.layout(), r.partialRotaryFactor())).build();
    }

    /**
     * The transformers fixtures of gpt-oss (biases, sinks, sliding window, clamped SwiGLU, YaRN) and DeepSeek-V3
     * (latent attention, a dense layer, sigmoid routing in groups, a shared expert) converted to F32 GGUFs: loaded
     * back, each computes what its folder computes under llama.cpp's semantics, and what transformers computed.
     * The one difference is gpt-oss's YaRN, whose correction range llama.cpp rounds to whole dimensions where the
     * config says truncate: false; the folder model with that rounding gives the GGUF's logits.
     */
    @ParameterizedTest
    @CsvSource({"gpt-oss, gpt-oss, 1", "deepseek-v3, deepseek2, 0"})
    void theGptOssAndDeepseekV3FixturesGiveTheFolderModelsAndTransformersLogitsFromAnF32Gguf(
            String fixture, String architecture, int notes) throws IOException {
        Path folder = Resources.fixture(fixture);
        Path gguf = dir.resolve(fixture + ".gguf");
        var result = GgufConverter.convert(folder, gguf, Optional.of(GgufFileType.F32));
        assertEquals(architecture, result.architecture());
        assertEquals(notes, result.notes().size(), result.notes().toString());
        ModelConfig stored = ModelLoader.config(folder);
        ModelConfig config = ModelLoader.config(gguf);
        assertEquals(stored.family(), config.family());
        assertEquals(stored.attention(), config.attention());
        assertEquals(stored.layers(), config.layers());
        assertEquals(truncatedYarn(stored).rope(), config.rope());
        assertEquals(stored.moe().orElseThrow().toString().replaceAll("losses=.*, seed", "seed"),
                config.moe().orElseThrow().toString().replaceAll("losses=.*, seed", "seed"));

        Tensor inputIds, reference;
        try (var r = dev.moe4j.io.safetensors.SafetensorsReader.open(folder.resolve("reference.safetensors"))) {
            inputIds = r.tensor("input_ids").copy();
            reference = r.tensor("logits").copy();
        }
        float[] transformers = reference.toFloatArray();
        try (LanguageModel fromGguf = ModelLoader.load(gguf, CpuBackend.INSTANCE, WeightMemory.MAPPED);
             LanguageModel asLlamaCpp = ModelLoader.load(folder, truncatedYarn(stored), CpuBackend.INSTANCE,
                     WeightMemory.MAPPED);
             LanguageModel asTransformers = ModelLoader.load(folder, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            float[] gguf32 = referenceInputLogits(fromGguf, inputIds);
            float[] folderRounded = referenceInputLogits(asLlamaCpp, inputIds);
            float[] folderExact = referenceInputLogits(asTransformers, inputIds);
            double againstFolder = relative(gguf32, folderRounded);
            double againstTransformers = relative(gguf32, transformers);
            double folderAgainstTransformers = relative(folderExact, transformers);
            System.out.printf(java.util.Locale.ROOT, "%s GGUF F32 vs folder (llama.cpp's YaRN): %.2e; vs"
                    + " transformers: %.2e; folder vs transformers: %.2e%n", fixture, againstFolder,
                    againstTransformers, folderAgainstTransformers);
            assertTrue(againstFolder <= 1e-6, "logits differ from the folder model's by " + againstFolder);
            assertTrue(folderAgainstTransformers <= 1e-4, "the folder model differs from transformers by "
                    + folderAgainstTransformers);
            if (notes == 0) {
                assertTrue(againstTransformers <= 1e-4, "logits differ from transformers' by " + againstTransformers);
            } else {
                // gpt-oss: the whole gap to transformers is the rounded range (6e-4 of the largest logit here), and
                // it is one a test of llama.cpp's YaRN would see
                assertEquals(relative(folderRounded, transformers), againstTransformers, 1e-6);
                assertTrue(againstTransformers > 1e-4, "the rounding no longer shows: " + againstTransformers);
            }
        }
    }

    /**
     * A quantised file runs its blocks as stored (decode and prefill kernels, stacked experts, embedding rows, LM
     * head): its logits equal, up to the order of summation, those of the same weights decoded to an F32 file.
     */
    @ParameterizedTest
    @CsvSource({"q8_0, Q8_0", "q4_0, Q4_0", "q4_k_m, Q4_K", "q5_k_m, Q5_K", "q6_k, Q6_K", "mxfp4_moe, MXFP4"})
    void aQuantisedGgufComputesWhatItsDecodedWeightsCompute(String fileType, DType expertType) {
        Path folder = dir.resolve("qwen3");
        // rows of 256: whole super-blocks, so the K-quants are used rather than their fallbacks
        var config = TinyModels.config("qwen3_moe", "\"hidden_size\":256,\"moe_intermediate_size\":256,"
                + "\"head_dim\":64,\"vocab_size\":300");
        ModelSaver.save(new Transformer(config, new InitialWeights(0.3, 5)), folder, "qwen3_moe", DType.F32,
                ModelSaver.DEFAULT_SHARD_BYTES);
        Path quantised = dir.resolve(fileType + ".gguf"), decoded = dir.resolve(fileType + "-f32.gguf");
        GgufConverter.convert(folder, quantised, Optional.of(GgufFileType.parse(fileType, "type")));
        GgufQuantizer.quantize(quantised, decoded, GgufFileType.F32);
        try (GgufReader r = GgufReader.open(quantised)) {
            assertEquals(expertType, r.tensor("blk.0.ffn_gate_exps.weight").dtype());
        }
        int[] prompt = java.util.Arrays.stream(PROMPT).map(id -> id % 300).toArray();
        try (LanguageModel a = ModelLoader.load(decoded, CpuBackend.INSTANCE, WeightMemory.COPIED);
             LanguageModel b = ModelLoader.load(quantised, CpuBackend.INSTANCE, WeightMemory.COPIED)) {
            for (int rows : new int[] {prompt.length, 1}) { // the packed (prefill) and decode kernels
                int[] tokens = java.util.Arrays.copyOf(prompt, rows);
                Tensor expected = a.forward(a.newState(rows), tokens, false, null);
                Tensor actual = b.forward(b.newState(rows), tokens, false, null);
                double scale = 0, diff = 0;
                for (long i = 0; i < expected.size(); i++) {
                    scale = Math.max(scale, Math.abs(expected.getFloat(i)));
                    diff = Math.max(diff, Math.abs(expected.getFloat(i) - actual.getFloat(i)));
                }
                assertTrue(diff / scale <= 1e-5, fileType + ", " + rows + " rows: logits differ by " + diff / scale);
            }
        }
    }

    @Test
    void olmoeWithGroupedQueryAttentionIsRefusedBecauseLlamaCppNormalisesKeysOverTheModelsWidth() {
        var e = assertThrows(BadInputException.class, () -> GgufConverter.convert(Resources.fixture("olmoe"),
                dir.resolve("o.gguf"), Optional.empty()));
        assertTrue(e.getMessage().endsWith("the model has grouped-query attention, which llama.cpp's 'olmoe'"
                + " architecture does not; a GGUF of it would compute another function"), e.getMessage());
    }

    @Test
    void aBf16GgufGivesTheBf16FolderModelsLogits() {
        Path folder = Resources.fixture("mixtral-bf16-sharded");
        Path gguf = dir.resolve("bf16.gguf");
        GgufConverter.convert(folder, gguf, Optional.empty());
        try (GgufReader r = GgufReader.open(gguf)) {
            assertEquals(DType.BF16, r.tensor("blk.0.ffn_gate_exps.weight").dtype());
        }
        double d = maxRelativeDifference(folder, gguf, WeightMemory.MAPPED);
        assertTrue(d <= 1e-6, "logits differ by " + d + " relative");
    }

    @Test
    void theVocabularyAndChatTemplateComeBackFromTheMetadata() throws IOException {
        Path folder = dir.resolve("mixtral");
        Files.createDirectories(folder);
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")) {
            Files.copy(Resources.fixture("mixtral").resolve(f), folder.resolve(f));
        }
        String template = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}"
                + "{% endfor %}";
        Files.writeString(folder.resolve("tokenizer_config.json"), "{\"chat_template\": "
                + dev.moe4j.io.json.Json.mapper().writeValueAsString(template)
                + ", \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
        Path gguf = dir.resolve("mixtral.gguf");
        GgufConverter.convert(folder, gguf, Optional.empty());

        Tokenizer json = Tokenizer.load(folder.resolve("tokenizer.json"));
        GgufModel.Description description = GgufModel.describe(gguf);
        Tokenizer fromGguf = description.tokenizer();
        for (String text : List.of("Hello world", "Mixture-of-Experts routes each token to k=2 experts.",
                "  spaces  and\nnew lines\t", "naïve café — 混合专家 🤖", "<s> literal </s> specials")) {
            int[] ids = json.encodeIds(text, true);
            assertArrayEquals(ids, fromGguf.encodeIds(text, true), text);
            assertEquals(json.decode(ids, true), fromGguf.decode(ids, true), text);
            assertEquals(json.decode(ids, false), fromGguf.decode(ids, false), text);
        }
        var messages = List.of(new ChatTemplate.Message("user", "hi"), new ChatTemplate.Message("assistant", "yo"));
        assertEquals(ModelFolder.chatTemplate(folder, null).render(messages, false),
                description.template(gguf).render(messages, false));
        assertEquals("<s>[user] hi</s>[assistant] yo</s>", ModelFolder.chatTemplate(gguf, null).render(messages, false));

        try (ModelFolder opened = ModelFolder.open(gguf, ModelFolder.Opener.CHECKPOINT)) {
            assertTrue(opened.eosTokenIds().contains(2));
            assertEquals(512, opened.config().vocabSize());
        }
    }

    @Test
    void aModelWithoutATemplateSaysSoAndTheTokenizerOfASyntheticVocabularyLoads() {
        Path gguf = dir.resolve("q.gguf");
        GgufConverter.convert(Resources.fixture("qwen3-moe"), gguf, Optional.empty());
        var e = assertThrows(ChatTemplate.Missing.class, () -> ModelFolder.chatTemplate(gguf, null));
        assertEquals(gguf + ": no tokenizer.chat_template in this GGUF file; give a chat template with --template FILE",
                e.getMessage());
        Tokenizer t = GgufModel.describe(gguf).tokenizer();
        assertEquals("<t5><t6>", t.decode(new int[] {5, 6}, true));
    }

    /** The metadata of the converted mixtral fixture, but for the key {@code drop} left out. */
    private Path withoutKey(String drop) {
        Path good = dir.resolve("good.gguf");
        if (!Files.exists(good)) {
            GgufConverter.convert(Resources.fixture("mixtral"), good, Optional.empty());
        }
        Path bad = dir.resolve("bad-" + drop + ".gguf");
        try (GgufReader r = GgufReader.open(good)) {
            var m = GgufMetadata.builder();
            r.metadata().entries().forEach((k, v) -> {
                if (!k.equals(drop)) {
                    m.put(k, v);
                }
            });
            var tensors = new ArrayList<GgufTensor>();
            r.tensors().forEach(i -> tensors.add(GgufTensor.of(i.name(), i.type(), r.tensor(i.name()))));
            GgufWriter.write(bad, m.build(), tensors);
        }
        return bad;
    }

    @Test
    void aMissingRequiredKeyOrAnUnknownArchitectureIsOneLineNamingFileAndKey() {
        Path noExperts = withoutKey("llama.expert_count");
        var e = assertThrows(BadInputException.class, () -> ModelLoader.config(noExperts));
        assertEquals(noExperts + ": missing metadata 'llama.expert_count', which a mixture-of-experts llama model"
                + " (moe4j runs MoE models) needs", e.getMessage());
        Path noEps = withoutKey("llama.attention.layer_norm_rms_epsilon");
        e = assertThrows(BadInputException.class, () -> ModelLoader.config(noEps));
        assertEquals(noEps + ": missing metadata 'llama.attention.layer_norm_rms_epsilon', which a llama model needs",
                e.getMessage());
        Path noTokens = withoutKey("tokenizer.ggml.tokens");
        e = assertThrows(BadInputException.class, () -> ModelFolder.open(noTokens, ModelFolder.Opener.CHECKPOINT));
        assertTrue(e.getMessage().startsWith(noTokens + ": metadata 'tokenizer.ggml.tokens' is missing"),
                e.getMessage());

        Path gemma = dir.resolve("gemma.gguf");
        GgufWriter.write(gemma, GgufMetadata.builder().put("general.architecture", GgufValue.string("gemma"))
                .build(), List.of());
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(gemma));
        assertEquals(gemma + ": metadata 'general.architecture' is 'gemma', an architecture moe4j does not run; it"
                + " runs llama, qwen2moe, qwen3moe, olmoe, gpt-oss, deepseek2", e.getMessage());
    }

    @Test
    void aTensorOfTheWrongShapeOrOneTheModelDoesNotHaveIsRefusedByName() throws IOException {
        Path good = dir.resolve("good.gguf");
        GgufConverter.convert(Resources.fixture("mixtral"), good, Optional.empty());
        Path extra = dir.resolve("extra.gguf");
        Path fewerExperts = dir.resolve("fewer.gguf");
        try (GgufReader r = GgufReader.open(good)) {
            var m = GgufMetadata.builder();
            r.metadata().entries().forEach(m::put);
            var metadata = m.build();
            var tensors = new ArrayList<GgufTensor>();
            r.tensors().forEach(i -> tensors.add(GgufTensor.of(i.name(), i.type(), r.tensor(i.name()))));
            tensors.add(GgufTensor.of("rope_freqs.weight", dev.moe4j.io.gguf.GgmlType.F32, Tensor.zeros(8)));
            GgufWriter.write(extra, metadata, tensors);
            tensors.removeLast();
            int i = tensors.indexOf(tensors.stream().filter(t -> t.name().equals("blk.1.ffn_up_exps.weight"))
                    .findFirst().orElseThrow());
            tensors.set(i, GgufTensor.of("blk.1.ffn_up_exps.weight", dev.moe4j.io.gguf.GgmlType.F32,
                    r.tensor("blk.1.ffn_up_exps.weight").slice(0, 7)));
            GgufWriter.write(fewerExperts, metadata, tensors);
        }
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(extra));
        assertEquals(extra + ": unexpected tensor 'rope_freqs.weight' that a mixtral model with this GGUF metadata"
                + " does not have", e.getMessage());
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(fewerExperts));
        assertEquals(fewerExperts + ": tensor 'blk.1.ffn_up_exps.weight' has shape [7, 96, 64]; expected [8, rows,"
                + " columns], one matrix for each of the 8 experts its GGUF metadata declares", e.getMessage());
    }

    /**
     * {@code source} written again with the metadata {@code edit} leaves, its tensors but those {@code replaced} maps
     * to empty, and those it maps to another tensor.
     */
    private static Path rewritten(Path source, Path out, java.util.function.Consumer<java.util.Map<String, GgufValue>> edit,
                                  java.util.Map<String, Optional<GgufTensor>> replaced) {
        try (GgufReader r = GgufReader.open(source)) {
            var entries = new java.util.LinkedHashMap<>(r.metadata().entries());
            edit.accept(entries);
            var m = GgufMetadata.builder();
            entries.forEach(m::put);
            var tensors = new ArrayList<GgufTensor>();
            for (var info : r.tensors()) {
                Optional<GgufTensor> t = replaced.getOrDefault(info.name(),
                        Optional.of(GgufTensor.of(info.name(), info.type(), r.tensor(info.name()))));
                t.ifPresent(tensors::add);
            }
            GgufWriter.write(out, m.build(), tensors);
        }
        return out;
    }

    @Test
    void aDeepseek2FileOfLlamaCppsOlderConverterWithAnUnsplitKvBGivesTheSameLogits() {
        Path folder = Resources.fixture("deepseek-v3");
        Path split = dir.resolve("split.gguf");
        GgufConverter.convert(folder, split, Optional.of(GgufFileType.F32));
        // the older form: the heads' widths under key_length and value_length, attn_kv_b as transformers has it
        var replaced = new java.util.HashMap<String, Optional<GgufTensor>>();
        try (var hf = dev.moe4j.io.safetensors.Checkpoint.open(folder)) {
            for (int layer = 0; layer < 3; layer++) {
                replaced.put("blk." + layer + ".attn_k_b.weight", Optional.of(GgufTensor.of("blk." + layer
                        + ".attn_kv_b.weight", dev.moe4j.io.gguf.GgmlType.F32,
                        hf.tensor("model.layers." + layer + ".self_attn.kv_b_proj.weight").copy())));
                replaced.put("blk." + layer + ".attn_v_b.weight", Optional.empty());
            }
        }
        Path legacy = rewritten(split, dir.resolve("legacy.gguf"), m -> {
            m.remove("deepseek2.attention.key_length_mla");
            m.remove("deepseek2.attention.value_length_mla");
            m.put("deepseek2.attention.key_length", GgufValue.uint32(24));
            m.put("deepseek2.attention.value_length", GgufValue.uint32(16));
            m.put("deepseek2.attention.head_count_kv", GgufValue.uint32(4));
        }, replaced);
        assertEquals(ModelLoader.config(split).attention(), ModelLoader.config(legacy).attention());
        int[] prompt = java.util.Arrays.stream(PROMPT).map(id -> id % 512).toArray();
        try (LanguageModel a = ModelLoader.load(split, CpuBackend.INSTANCE, WeightMemory.MAPPED);
             LanguageModel b = ModelLoader.load(legacy, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            Tensor expected = a.forward(a.newState(prompt.length), prompt, false, null);
            Tensor actual = b.forward(b.newState(prompt.length), prompt, false, null);
            for (long i = 0; i < expected.size(); i++) {
                assertEquals(expected.getFloat(i), actual.getFloat(i), 0f, "logit " + i);
            }
        }
    }

    @Test
    void aDeepseek2OrGptOssFileLlamaCppWouldRunOtherwiseIsOneLineNamingTheKey() {
        Path deepseek = dir.resolve("deepseek.gguf");
        GgufConverter.convert(Resources.fixture("deepseek-v3"), deepseek, Optional.of(GgufFileType.F32));
        var none = java.util.Map.<String, Optional<GgufTensor>>of();
        Path softmax = rewritten(deepseek, dir.resolve("softmax.gguf"),
                m -> m.remove("deepseek2.expert_gating_func"), none);
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(softmax));
        assertEquals(softmax + ": metadata 'deepseek2.expert_gating_func' is missing, so llama.cpp gates with a"
                + " softmax (DeepSeek-V2's routing); moe4j runs deepseek2 with sigmoid gating (2), DeepSeek-V3's",
                e.getMessage());
        Path eps = rewritten(deepseek, dir.resolve("eps.gguf"), m -> m.put(
                "deepseek2.attention.layer_norm_rms_epsilon", GgufValue.float32(1e-5f)), none);
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(eps));
        assertTrue(e.getMessage().startsWith(eps + ": metadata 'deepseek2.attention.layer_norm_rms_epsilon' is"
                + " 1.0E-5; moe4j's latent attention normalises"), e.getMessage());
        Path yarn = rewritten(deepseek, dir.resolve("yarn.gguf"), m -> {
            m.put("deepseek2.rope.scaling.type", GgufValue.string("yarn"));
            m.put("deepseek2.rope.scaling.factor", GgufValue.float32(40));
        }, none);
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(yarn));
        assertTrue(e.getMessage().startsWith(yarn + ": metadata 'deepseek2.rope.scaling.yarn_log_multiplier' is"
                + " missing; llama.cpp's deepseek2 then scales"), e.getMessage());
        Path noBias = rewritten(deepseek, dir.resolve("no-bias.gguf"), m -> { },
                java.util.Map.of("blk.2.exp_probs_b.bias", Optional.empty()));
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(noBias));
        assertTrue(e.getMessage().startsWith(noBias + ": missing tensor 'blk.2.exp_probs_b.bias' of shape [16]"),
                e.getMessage());

        Path gptOss = dir.resolve("gpt-oss.gguf");
        GgufConverter.convert(Resources.fixture("gpt-oss"), gptOss, Optional.of(GgufFileType.F32));
        Path attnFactor = rewritten(gptOss, dir.resolve("attn-factor.gguf"), m -> m.put(
                "gpt-oss.rope.scaling.attn_factor", GgufValue.float32(0.5f)), none);
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(attnFactor));
        assertEquals(attnFactor + ": metadata 'gpt-oss.rope.scaling.attn_factor' is 0.5; moe4j runs YaRN with 1"
                + " there", e.getMessage());
        Path noWindow = rewritten(gptOss, dir.resolve("no-window.gguf"),
                m -> m.remove("gpt-oss.attention.sliding_window"), none);
        e = assertThrows(BadInputException.class, () -> ModelLoader.load(noWindow));
        assertEquals(noWindow + ": missing metadata 'gpt-oss.attention.sliding_window', which a gpt-oss model needs",
                e.getMessage());
    }
}
