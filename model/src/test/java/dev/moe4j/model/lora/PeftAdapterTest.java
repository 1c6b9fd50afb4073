package dev.moe4j.model.lora;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.model.LoadOptions;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.core.backend.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Adapters in PEFT's format: names, layout, writing and reading back, and refusing broken folders in one line. */
class PeftAdapterTest {
    static List<LoraCases> cases() {
        return LoraCases.ALL;
    }

    static final int[] TOKENS = TinyModels.tokens(12, 512, 3);

    @ParameterizedTest
    @MethodSource("cases")
    void newAdaptersStartAsTheBaseModel(LoraCases c) {
        try (TransformerModel base = ModelLoader.load(c.base(), CpuBackend.INSTANCE, WeightMemory.MAPPED);
             TransformerModel adapted = ModelLoader.loadForLora(c.base(), WeightMemory.MAPPED, c.settings(),
                     Optional.empty())) {
            assertFalse(adapted.transformer().adapters().isEmpty());
            assertArrayEquals(TinyModels.logits(base.transformer(), TOKENS, 2).toFloatArray(),
                    TinyModels.logits(adapted.transformer(), TOKENS, 2).toFloatArray(), c + ": b · a = 0 at first");
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void writtenAdaptersLoadBackWithTheSameLogits(LoraCases c, @TempDir Path dir) {
        try (TransformerModel adapted = c.withRandomAdapters(5)) {
            PeftAdapter.write(dir, adapted.transformer(), c.settings(), c.base().toString(), DType.F32);
            try (TransformerModel loaded = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                    LoadOptions.of(WeightMemory.MAPPED).withAdapter(dir))) {
                double diff = TinyModels.relativeLogitsDifference(adapted.transformer(), loaded.transformer(), TOKENS, 2);
                assertTrue(diff < 1e-6, c + ": " + diff);
                assertEquals(adapted.transformer().adapters().keySet(), loaded.transformer().adapters().keySet());
            }
            try (TransformerModel base = ModelLoader.load(c.base(), CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
                double moved = TinyModels.relativeLogitsDifference(base.transformer(), adapted.transformer(), TOKENS, 2);
                assertTrue(moved > 1e-3, c + ": the adapters change the logits (by " + moved + ")");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void mergingAnAdapterGivesAFolderWithTheAdaptedLogits(LoraCases c, @TempDir Path dir) {
        Path adapter = dir.resolve("adapter"), merged = dir.resolve("merged");
        try (TransformerModel adapted = c.withRandomAdapters(9)) {
            PeftAdapter.write(adapter, adapted.transformer(), c.settings(), c.base().toString(), DType.F32);
            var result = AdapterMerge.merge(c.base(), adapter, merged, Optional.empty());
            assertTrue(result.tensorsMerged() >= result.adapters(), c + ": " + result);
            try (TransformerModel m = ModelLoader.load(merged, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
                assertTrue(m.transformer().adapters().isEmpty());
                double diff = TinyModels.relativeLogitsDifference(adapted.transformer(), m.transformer(), TOKENS, 2);
                assertTrue(diff < 1e-5, c + ": merged vs adapter beside the weights: " + diff);
            }
        }
        var again = assertThrows(BadInputException.class, () -> AdapterMerge.merge(c.base(), adapter, merged,
                Optional.empty()));
        assertTrue(again.getMessage().contains("exists"), again.getMessage());
    }

    /**
     * An adapter applies to a GGUF file of the same model as to its folder (F32: the same logits), and beside
     * block-quantised weights (Q8_0) it moves the logits as it does the float model's.
     */
    @Test
    void adaptersApplyBesideGgufWeightsFloatOrQuantised(@TempDir Path tmp) {
        var c = LoraCases.named("qwen3-moe");
        Path adapter = tmp.resolve("adapter"), f32 = tmp.resolve("m.gguf"), q8 = tmp.resolve("m-q8.gguf");
        try (TransformerModel adapted = c.withRandomAdapters(6)) {
            PeftAdapter.write(adapter, adapted.transformer(), c.settings(), "base", DType.F32);
        }
        dev.moe4j.model.gguf.GgufConverter.convert(c.base(), f32, Optional.of(dev.moe4j.model.gguf.GgufFileType.F32));
        dev.moe4j.model.gguf.GgufConverter.convert(c.base(), q8, Optional.of(dev.moe4j.model.gguf.GgufFileType.Q8_0));
        var options = LoadOptions.of(WeightMemory.MAPPED).withAdapter(adapter);
        try (TransformerModel folder = ModelLoader.load(c.base(), CpuBackend.INSTANCE, options);
             TransformerModel gguf = ModelLoader.load(f32, CpuBackend.INSTANCE, options);
             TransformerModel quantised = ModelLoader.load(q8, CpuBackend.INSTANCE, options);
             TransformerModel quantisedBase = ModelLoader.load(q8, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            assertTrue(TinyModels.relativeLogitsDifference(folder.transformer(), gguf.transformer(), TOKENS, 2) < 1e-6);
            double quantisation = TinyModels.relativeLogitsDifference(folder.transformer(), quantised.transformer(), TOKENS, 2);
            double adapterEffect = TinyModels.relativeLogitsDifference(quantisedBase.transformer(), quantised.transformer(), TOKENS, 2);
            assertTrue(quantisation < 0.05 && adapterEffect > 5 * quantisation,
                    "Q8_0 moves the logits by " + quantisation + ", the adapter by " + adapterEffect);
        }
    }

    @Test
    void adapterConfigListsTargetModulesAndTargetParametersAsPeftMatchesThem(@TempDir Path dir) {
        var c = LoraCases.named("qwen2-moe");
        try (TransformerModel adapted = c.withRandomAdapters(1)) {
            PeftAdapter.write(dir, adapted.transformer(), c.settings(), "qwen2-moe", DType.F32);
        }
        var config = Json.read(dir.resolve(PeftAdapter.CONFIG));
        assertEquals("LORA", config.get("peft_type").asText());
        assertEquals(2, config.get("r").asInt());
        assertEquals(4, config.get("lora_alpha").asInt());
        assertEquals("none", config.get("bias").asText());
        assertEquals("0.21.0", config.get("peft_version").asText(), "the layout written is PEFT 0.19.1's and later");
        assertEquals("[\"mlp.shared_expert.down_proj\",\"mlp.shared_expert.gate_proj\",\"mlp.shared_expert.up_proj\","
                + "\"q_proj\",\"v_proj\"]", Json.compact(config.get("target_modules")));
        assertEquals("[\"mlp.experts.down_proj\",\"mlp.experts.gate_up_proj\",\"mlp.gate.weight\"]",
                Json.compact(config.get("target_parameters")));
        try (var r = SafetensorsReader.open(dir.resolve(PeftAdapter.WEIGHTS))) {
            // 8 experts of [2I = 96, H = 64], rank 2: lora_A [r·E, H] under base_layer (wrapped first), lora_B [2I, r·E].
            assertArrayEquals(new int[] {16, 64}, r.tensor(
                    "base_model.model.model.layers.0.mlp.experts.base_layer.lora_A.weight").shape());
            assertArrayEquals(new int[] {96, 16}, r.tensor(
                    "base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight").shape());
            assertArrayEquals(new int[] {16, 48}, r.tensor("base_model.model.model.layers.0.mlp.experts.lora_A.weight").shape());
            assertArrayEquals(new int[] {64, 16}, r.tensor("base_model.model.model.layers.0.mlp.experts.lora_B.weight").shape());
            assertArrayEquals(new int[] {2, 64}, r.tensor("base_model.model.model.layers.0.mlp.gate.lora_A.weight").shape());
            assertArrayEquals(new int[] {96, 2}, r.tensor(
                    "base_model.model.model.layers.0.mlp.shared_expert.gate_proj.lora_B.weight").shape());
        }
    }

    @Test
    void sitesAreTransformers5Modules() {
        Map<String, String> mixtral = modules("mixtral");
        assertEquals("model.layers.1.mlp.gate", mixtral.get("layers.1.moe.router"), "block_sparse_moe is mlp in memory");
        assertEquals("model.layers.1.mlp.experts", mixtral.get("layers.1.moe.experts.gate_up_proj"));
        assertEquals("model.layers.0.self_attn.kv_a_proj_with_mqa", modules("deepseek-v3").get("layers.0.attention.kv_a_proj"));
        assertEquals("model.layers.1.mlp.shared_experts.up_proj", modules("deepseek-v3").get("layers.1.moe.shared_experts.up_proj"));
        assertEquals("model.layers.0.mlp.router", modules("gpt-oss").get("layers.0.moe.router"));
        assertTrue(AdapterSite.of(ModelLoader.config(LoraCases.named("gpt-oss").base())).stream()
                .anyMatch(s -> s.kind() == AdapterSite.Kind.EXPERTS && s.transposed()), "gpt-oss stores experts [E, in, out]");
    }

    private static Map<String, String> modules(String fixture) {
        var out = new LinkedHashMap<String, String>();
        AdapterSite.of(ModelLoader.config(LoraCases.named(fixture).base())).stream()
                .filter(s -> s.kind() != AdapterSite.Kind.EXPERT).forEach(s -> out.put(s.name(), s.module()));
        return out;
    }

    /**
     * PEFT's ParamWrapper update of expert e, Σ_ρ B[:, ρ·E + e] · A[e·r + ρ, :], is moe4j's b_e · a_e: [out, in] in
     * PEFT 0.19.1's layout; before it, for [E, out, in] parameters, A spanned the output, so the update was b_e · a_e
     * transposed.
     */
    @Test
    void fusedExpertLayoutsMapPeftsUpdateToMoe4jsPerExpertProduct() {
        var random = new Random(2);
        int e = 3, r = 2, d1 = 5, d2 = 4;
        Tensor loraA = gaussian(random, r * e, d1), loraB = gaussian(random, d2, r * e);
        for (boolean aIsInput : new boolean[] {true, false}) {
            Tensor[] ab = PeftLayout.fromPeft(loraA, loraB, e, aIsInput);
            for (int x = 0; x < e; x++) {
                for (int i = 0; i < d1; i++) {
                    for (int o = 0; o < d2; o++) {
                        double peft = 0, moe4j = 0;
                        for (int k = 0; k < r; k++) {
                            peft += loraB.get(o, k * e + x) * loraA.get(x * r + k, i);
                            // moe4j's W_e is [out, in]: [d2, d1] when A spans the input, [d1, d2] when it spans the output.
                            moe4j += aIsInput ? ab[1].get(x, o, k) * ab[0].get(x, k, i)
                                    : ab[1].get(x, i, k) * ab[0].get(x, k, o);
                        }
                        assertEquals(peft, moe4j, 1e-6);
                    }
                }
            }
        }
        Tensor[] current = PeftLayout.fromPeft(loraA, loraB, e, true);
        Tensor[] back = PeftLayout.toPeft(current[0], current[1]);
        assertArrayEquals(loraA.toFloatArray(), back[0].toFloatArray());
        assertArrayEquals(loraB.toFloatArray(), back[1].toFloatArray());
    }

    @Test
    void olderPeftVersionsLayoutIsReadByItsVersionAndShapes(@TempDir Path tmp) {
        var c = LoraCases.named("qwen3-moe");
        Path current = tmp.resolve("current"), older = tmp.resolve("older");
        try (TransformerModel adapted = c.withRandomAdapters(4)) {
            PeftAdapter.write(current, adapted.transformer(), c.settings(), "base", DType.F32);
        }
        // The same adapters as PEFT 0.18 laid them out: for [E, out, in] experts, lora_A [r·E, out], lora_B [in, r·E].
        var config = ModelLoader.config(c.base());
        Map<String, Tensor> tensors = read(current.resolve(PeftAdapter.WEIGHTS));
        for (var key : List.copyOf(tensors.keySet())) {
            if (key.contains(".mlp.experts.") && key.endsWith("lora_A.weight")) {
                String bKey = key.replace("lora_A", "lora_B");
                Tensor[] ab = PeftLayout.fromPeft(tensors.get(key), tensors.get(bKey), 16, true);
                Tensor a = ab[0], b = ab[1];
                int experts = a.dim(0), r = a.dim(1), in = a.dim(2), out = b.dim(1);
                Tensor oldA = Tensor.zeros(r * experts, out), oldB = Tensor.zeros(in, r * experts);
                for (int x = 0; x < experts; x++) {
                    for (int k = 0; k < r; k++) {
                        for (int o = 0; o < out; o++) {
                            oldA.set(b.get(x, o, k), x * r + k, o);
                        }
                        for (int i = 0; i < in; i++) {
                            oldB.set(a.get(x, k, i), i, k * experts + x);
                        }
                    }
                }
                tensors.put(key, oldA);
                tensors.put(bKey, oldB);
            }
        }
        try {
            Files.createDirectories(older);
            var node = (com.fasterxml.jackson.databind.node.ObjectNode) Json.read(current.resolve(PeftAdapter.CONFIG));
            node.put("peft_version", "0.18.1");
            Files.writeString(older.resolve(PeftAdapter.CONFIG), Json.pretty(node));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        SafetensorsWriter.write(older.resolve(PeftAdapter.WEIGHTS), tensors);
        try (TransformerModel a = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                LoadOptions.of(WeightMemory.MAPPED).withAdapter(current));
             TransformerModel b = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                     LoadOptions.of(WeightMemory.MAPPED).withAdapter(older))) {
            assertEquals(0, TinyModels.relativeLogitsDifference(a.transformer(), b.transformer(), TOKENS, 2), 1e-7);
        }
        assertTrue(PeftAdapter.atLeast("0.21.0", 0, 19, 1) && PeftAdapter.atLeast("0.19.1", 0, 19, 1)
                && !PeftAdapter.atLeast("0.19.0", 0, 19, 1) && !PeftAdapter.atLeast("0.18.2.dev0", 0, 19, 1)
                && PeftAdapter.atLeast("1.0", 0, 19, 1));
        assertTrue(config.family().equals("qwen3_moe"));
    }

    private static Tensor gaussian(Random random, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) random.nextGaussian());
        }
        return t;
    }

    // ---- broken folders: one line naming the file and what is wrong ----

    private static Path written(Path dir) {
        var c = LoraCases.named("qwen3-moe");
        try (TransformerModel adapted = c.withRandomAdapters(3)) {
            PeftAdapter.write(dir, adapted.transformer(), c.settings(), "base", DType.F32);
        }
        return dir;
    }

    private static String refusal(Path dir) {
        var config = dev.moe4j.model.ModelLoader.config(LoraCases.named("qwen3-moe").base());
        var e = assertThrows(BadInputException.class, () -> PeftAdapter.read(dir, config));
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    private static void editConfig(Path dir, Consumer<com.fasterxml.jackson.databind.node.ObjectNode> edit) throws IOException {
        var node = (com.fasterxml.jackson.databind.node.ObjectNode) Json.read(dir.resolve(PeftAdapter.CONFIG));
        edit.accept(node);
        Files.writeString(dir.resolve(PeftAdapter.CONFIG), Json.pretty(node));
    }

    @Test
    void brokenAdapterFoldersAreRefusedInOneLine(@TempDir Path tmp) throws IOException {
        assertTrue(refusal(tmp.resolve("none")).contains("not an adapter folder"));
        Files.createDirectories(tmp.resolve("empty"));
        assertTrue(refusal(tmp.resolve("empty")).contains("no adapter_config.json"));

        Path dora = written(tmp.resolve("dora"));
        editConfig(dora, n -> n.put("use_dora", true));
        assertTrue(refusal(dora).contains("use_dora"));

        Path type = written(tmp.resolve("type"));
        editConfig(type, n -> n.put("peft_type", "IA3"));
        assertTrue(refusal(type).contains("peft_type is 'IA3'"));

        Path rank = written(tmp.resolve("rank"));
        editConfig(rank, n -> n.put("r", 8));
        assertTrue(refusal(rank).contains("has rank 4 but adapter_config.json says r = 8 for it"), refusal(rank));

        Path bias = written(tmp.resolve("bias"));
        editConfig(bias, n -> n.put("bias", "all"));
        assertTrue(refusal(bias).contains("bias is 'all'"));

        Path weights = written(tmp.resolve("weights"));
        Files.delete(weights.resolve(PeftAdapter.WEIGHTS));
        assertTrue(refusal(weights).contains("no adapter_model.safetensors"));

        Path truncated = written(tmp.resolve("truncated"));
        byte[] bytes = Files.readAllBytes(truncated.resolve(PeftAdapter.WEIGHTS));
        Files.write(truncated.resolve(PeftAdapter.WEIGHTS), java.util.Arrays.copyOf(bytes, bytes.length / 2));
        assertTrue(refusal(truncated).contains(PeftAdapter.WEIGHTS), refusal(truncated));

        Path unknown = written(tmp.resolve("unknown"));
        rewrite(unknown, m -> {
            m.put("base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight", Tensor.zeros(4, 64));
            m.put("base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight", Tensor.zeros(96, 4));
        });
        assertTrue(refusal(unknown).contains("'model.layers.7.self_attn.q_proj', which a qwen3_moe model of this config "
                + "does not have"), refusal(unknown));

        Path lonely = written(tmp.resolve("lonely"));
        rewrite(lonely, m -> m.remove("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"));
        assertTrue(refusal(lonely).contains("has no lora_B beside it"), refusal(lonely));

        Path misnamed = written(tmp.resolve("misnamed"));
        rewrite(misnamed, m -> m.put("base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight", Tensor.zeros(1)));
        assertTrue(refusal(misnamed).contains("is not a LoRA matrix"), refusal(misnamed));

        Path experts = written(tmp.resolve("experts"));
        rewrite(experts, m -> m.put("base_model.model.model.layers.0.mlp.experts.lora_A.weight", Tensor.zeros(64, 7)));
        assertTrue(refusal(experts).contains("fits none of the experts' parameters"), refusal(experts));
    }

    /** alpha_pattern gives q_proj alpha 32 (scale 8 at r = 4): as if its lora_B were 4 times larger at scale 2. */
    @Test
    void alphaPatternScalesTheModulesItMatches(@TempDir Path tmp) throws IOException {
        Path patterned = written(tmp.resolve("patterned"));
        editConfig(patterned, n -> n.putObject("alpha_pattern").put("q_proj", 32));
        Path scaled = written(tmp.resolve("scaled"));
        rewrite(scaled, m -> m.keySet().stream().filter(k -> k.contains("q_proj.lora_B")).forEach(k -> {
            Tensor t = m.get(k);
            for (long i = 0; i < t.size(); i++) {
                t.setFloat(i, 4 * t.getFloat(i));
            }
        }));
        Path plain = written(tmp.resolve("plain"));
        var base = LoraCases.named("qwen3-moe").base();
        try (TransformerModel a = ModelLoader.load(base, CpuBackend.INSTANCE, LoadOptions.of(WeightMemory.MAPPED).withAdapter(patterned));
             TransformerModel b = ModelLoader.load(base, CpuBackend.INSTANCE, LoadOptions.of(WeightMemory.MAPPED).withAdapter(scaled));
             TransformerModel c = ModelLoader.load(base, CpuBackend.INSTANCE, LoadOptions.of(WeightMemory.MAPPED).withAdapter(plain))) {
            assertTrue(TinyModels.relativeLogitsDifference(a.transformer(), b.transformer(), TOKENS, 2) < 1e-6);
            assertTrue(TinyModels.relativeLogitsDifference(a.transformer(), c.transformer(), TOKENS, 2) > 1e-4);
        }
    }

    @Test
    void anAdapterForAnotherModelIsRefusedWhenTheModelAsksForIt(@TempDir Path tmp) {
        Path dir = written(tmp.resolve("a"));
        // qwen3-moe's q_proj is [96, 64]; mixtral's is [64, 64], and its experts differ too.
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(LoraCases.named("mixtral").base(),
                CpuBackend.INSTANCE, LoadOptions.of(WeightMemory.MAPPED).withAdapter(dir)));
        assertFalse(e.getMessage().contains("\n"));
        assertTrue(e.getMessage().contains(PeftAdapter.WEIGHTS), e.getMessage());
    }

    private static void rewrite(Path dir, Consumer<Map<String, Tensor>> edit) {
        var tensors = new LinkedHashMap<String, Tensor>();
        try (var r = SafetensorsReader.open(dir.resolve(PeftAdapter.WEIGHTS))) {
            for (String n : r.names()) {
                tensors.put(n, r.tensor(n).copy());
            }
        }
        edit.accept(tensors);
        SafetensorsWriter.write(dir.resolve(PeftAdapter.WEIGHTS), tensors);
    }

    static Map<String, Tensor> read(Path file) {
        var out = new LinkedHashMap<String, Tensor>();
        try (var r = SafetensorsReader.open(file)) {
            for (String n : r.names()) {
                out.put(n, r.tensor(n).copy());
            }
        }
        return out;
    }

}
