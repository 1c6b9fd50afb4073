package dev.moe4j.model.lora;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.model.LoadOptions;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA parity with PEFT 0.17+ on transformers 5.17, both ways, per family (fixtures/lora, made on the GPU machine by
 * scripts/device/make_lora_fixtures.py):
 * <ul>
 * <li>an adapter PEFT made (seeded, non-zero lora_A and lora_B on attention, experts, router and shared experts),
 * read by moe4j, gives transformers' logits of base + adapter within 1e-5 of the largest logit (measured: 3.8e-7 to
 * 5.8e-7; the issue asks for 1e-4);</li>
 * <li>the adapter moe4j wrote ({@code moe4j/}), loaded by {@code peft.PeftModel.from_pretrained}, gives the logits
 * moe4j gives with it, within 1e-5 (measured: 3.7e-7 to 5.9e-7), PEFT finding exactly the keys it expects;</li>
 * <li>moe4j still writes exactly that adapter (a snapshot of the writer: run with
 * {@code -Dmoe4j.lora.regenerate=true} to write it anew into src/test/resources before a new device run).</li>
 * </ul>
 */
class PeftParityTest {
    /** The inputs of every case, as the device script has them. */
    static final int[] INPUT_IDS = {17, 301, 45, 488, 2, 250, 99, 7, 412, 63, 330, 128};
    static final long SEED = 11;

    static List<LoraCases> cases() {
        return LoraCases.ALL;
    }

    /**
     * The cases PEFT could make references for. Not deepseek-v3: for deepseek_v3, PEFT 0.21 rewrites target_modules
     * that end in gate_proj and up_proj (here the shared experts') into the fused parameter gate_up_proj with twice the
     * rank (rank_pattern and alpha_pattern '.*\.gate_up_proj'), which leaves the shared experts without adapters and
     * makes it expect rank 2r on the routed experts' gate_up_proj: moe4j's adapter, with shared experts at rank r, did
     * not load there (size mismatch), and that run wrote no reference.
     */
    static List<LoraCases> withReference() {
        return LoraCases.ALL.stream().filter(c -> !c.name().equals("deepseek-v3")).toList();
    }

    @ParameterizedTest
    @MethodSource("cases")
    void moe4jWritesTheAdapterCommittedForPeftToLoad(LoraCases c, @TempDir Path tmp) throws Exception {
        boolean regenerate = Boolean.getBoolean("moe4j.lora.regenerate");
        Path out = regenerate ? Path.of("src/test/resources/fixtures/lora", c.name(), "moe4j") : tmp;
        try (TransformerModel adapted = c.withRandomAdapters(SEED)) {
            PeftAdapter.write(out, adapted.transformer(), c.settings(), "fixtures/" + c.name(), DType.F32);
            var logits = new LinkedHashMap<String, Tensor>();
            Tensor ids = Tensor.zeros(DType.I64, 2, INPUT_IDS.length / 2);
            for (int i = 0; i < INPUT_IDS.length; i++) {
                ids.setLong(i, INPUT_IDS[i]);
            }
            logits.put("input_ids", ids);
            logits.put("logits", TinyModels.logits(adapted.transformer(), INPUT_IDS, 2).reshape(2, INPUT_IDS.length / 2, -1));
            SafetensorsWriter.write(out.resolve("moe4j_logits.safetensors"), logits);
        }
        Path committed = c.folder().resolve("moe4j");
        for (String file : List.of(PeftAdapter.WEIGHTS, "moe4j_logits.safetensors")) {
            Map<String, Tensor> expected = PeftAdapterTest.read(committed.resolve(file)), actual = PeftAdapterTest.read(out.resolve(file));
            assertEquals(expected.keySet(), actual.keySet(), c + " " + file);
            expected.forEach((k, t) -> assertArrayEquals(t.toFloatArray(), actual.get(k).toFloatArray(), 1e-6f, c + " " + k));
        }
        assertEquals(Json.read(committed.resolve(PeftAdapter.CONFIG)), Json.read(out.resolve(PeftAdapter.CONFIG)));
        assertTrue(!regenerate, "regenerated " + out + ": run the device script, then the tests again without the property");
    }

    @ParameterizedTest
    @MethodSource("withReference")
    void peftsAdapterGivesTransformersLogits(LoraCases c) {
        Map<String, Tensor> ref = c.reference();
        assertTrue(ref.containsKey("logits"), c + ": no reference.safetensors (scripts/device/make_lora_fixtures.py)");
        int[] ids = ids(ref.get("input_ids"));
        try (TransformerModel m = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                LoadOptions.of(WeightMemory.MAPPED).withAdapter(c.folder().resolve("peft")))) {
            assertClose(dev.moe4j.core.testing.Reference.values(ref.get("logits")),
                    TinyModels.logits(m.transformer(), ids, 2), 1e-5, c + ": logits of base + PEFT's adapter");
        }
    }

    @ParameterizedTest
    @MethodSource("withReference")
    void peftLoadsMoe4jsAdapterToTheLogitsMoe4jGives(LoraCases c) {
        Map<String, Tensor> ref = c.reference();
        assertTrue(ref.containsKey("moe4j_adapter.logits"), c + ": no PEFT logits for moe4j's adapter");
        assertArrayEquals(INPUT_IDS, ids(ref.get("input_ids")));
        try (TransformerModel m = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                LoadOptions.of(WeightMemory.MAPPED).withAdapter(c.folder().resolve("moe4j")))) {
            assertClose(dev.moe4j.core.testing.Reference.values(ref.get("moe4j_adapter.logits")),
                    TinyModels.logits(m.transformer(), INPUT_IDS, 2), 1e-5, c + ": PEFT with moe4j's adapter");
        }
    }

    /** PEFT's own deepseek_v3 adapter reads with its rank_pattern: the routed experts' gate_up_proj at rank 4, not 2. */
    @org.junit.jupiter.api.Test
    void peftsDeepseekAdapterWithItsRankPatternIsRead() {
        var c = LoraCases.named("deepseek-v3");
        try (TransformerModel m = ModelLoader.load(c.base(), CpuBackend.INSTANCE,
                LoadOptions.of(WeightMemory.MAPPED).withAdapter(c.folder().resolve("peft")))) {
            var adapters = m.transformer().adapters();
            assertArrayEquals(new int[] {16, 4, 64}, adapters.get("layers.1.moe.experts.gate_up_proj.lora_a").value().shape());
            assertArrayEquals(new int[] {16, 2, 32}, adapters.get("layers.1.moe.experts.down_proj.lora_a").value().shape());
            assertTrue(adapters.keySet().stream().noneMatch(k -> k.contains("shared_experts")));
        }
    }

    static int[] ids(Tensor t) {
        int[] out = new int[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) t.getLong(i);
        }
        return out;
    }

}
