package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.quant.E4m3BlockCodec;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checkpoints saved the way Hugging Face ships pre-quantised models (gpt-oss's MXFP4 experts, block-scaled FP8)
 * compute what the same model computes from F32 weights holding the quantised values: the layouts are read as
 * transformers reads them (element 2k in a byte's low nibble, E8M0 exponents biased by 127, gate and up rows
 * interleaved; one scale per tile of weight_block_size, partial tiles at the edges). transformers' own outputs for
 * such checkpoints are checked by ArchitectureParityTest's pre-quantised fixtures.
 */
class PrequantisedCheckpointTest {
    private static final float[] E2M1 = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

    @TempDir
    Path dir;

    private Map<String, Tensor> save(Path folder, String family, String extra) {
        var model = new Transformer(TinyModels.config(family, extra), new InitialWeights(0.1, 3));
        ModelSaver.save(model, folder, family, DType.F32, ModelSaver.DEFAULT_SHARD_BYTES);
        var tensors = new LinkedHashMap<String, Tensor>();
        try (var reader = SafetensorsReader.open(folder.resolve("model.safetensors"))) {
            reader.names().forEach(n -> tensors.put(n, reader.tensor(n).copy()));
        }
        return tensors;
    }

    private static void addQuantisationConfig(Path folder, String json) throws IOException {
        Path config = folder.resolve("config.json");
        Files.writeString(config, Files.readString(config).replaceFirst("\\{", "{\"quantization_config\":" + json + ","));
    }

    private static double relativeError(TransformerModel reference, TransformerModel model) {
        return TinyModels.relativeLogitsDifference(model.transformer(), reference.transformer(),
                TinyModels.tokens(14, 40, 2), 2);
    }

    // ---- gpt-oss MXFP4 ----

    /**
     * One expert's [in, out] matrix (transformers' in-memory layout) quantised to MXFP4 along in: blocks
     * [out, in/32, 16] and scales [out, in/32] as gpt-oss stores them, and the matrix set to the values they hold.
     */
    private static void mxfp4(Tensor stacked, int e, byte[] blocks, byte[] scales, Random random) {
        int in = stacked.dim(1), out = stacked.dim(2), groups = in / 32;
        for (int o = 0; o < out; o++) {
            for (int g = 0; g < groups; g++) {
                int exponent = random.nextInt(-4, 1);
                int at = ((e * out + o) * groups + g);
                scales[at] = (byte) (exponent + 127);
                for (int k = 0; k < 16; k++) {
                    int low = random.nextInt(16), high = random.nextInt(16);
                    blocks[at * 16 + k] = (byte) (low | high << 4);
                    long base = ((long) e * in + 32L * g + 2L * k) * out + o;
                    stacked.setFloat(base, Math.scalb(E2M1[low], exponent));
                    stacked.setFloat(base + out, Math.scalb(E2M1[high], exponent));
                }
            }
        }
    }

    @Test
    void gptOssMxfp4ExpertsComputeTheValuesTheirBlocksHold() throws IOException {
        Path plain = dir.resolve("plain"), quantised = dir.resolve("mxfp4");
        String extra = "\"hidden_size\":64,\"intermediate_size\":64";
        var tensors = save(plain, "gpt_oss", extra);
        save(quantised, "gpt_oss", extra);
        var stored = new LinkedHashMap<String, Tensor>();
        var random = new Random(11);
        for (var entry : tensors.entrySet()) {
            String name = entry.getKey();
            Tensor t = entry.getValue();
            if (!name.endsWith("experts.gate_up_proj") && !name.endsWith("experts.down_proj")) {
                stored.put(name, t);
                continue;
            }
            int experts = t.dim(0), in = t.dim(1), out = t.dim(2);
            byte[] blocks = new byte[experts * out * in / 2], scales = new byte[experts * out * in / 32];
            for (int e = 0; e < experts; e++) {
                mxfp4(t, e, blocks, scales, random);
            }
            stored.put(name + "_blocks", Tensor.wrap(DType.U8, java.lang.foreign.MemorySegment.ofArray(blocks),
                    experts, out, in / 32, 16));
            stored.put(name + "_scales", Tensor.wrap(DType.U8, java.lang.foreign.MemorySegment.ofArray(scales),
                    experts, out, in / 32));
        }
        SafetensorsWriter.write(plain.resolve("model.safetensors"), tensors);
        SafetensorsWriter.write(quantised.resolve("model.safetensors"), stored);
        addQuantisationConfig(quantised, "{\"quant_method\":\"mxfp4\"}");

        try (var reference = ModelLoader.load(plain, dev.moe4j.core.backend.CpuBackend.INSTANCE, WeightMemory.MAPPED);
             var model = ModelLoader.load(quantised, dev.moe4j.core.backend.CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            double error = relativeError(reference, model);
            assertTrue(error < 1e-5, "relative logits error " + error);
            var weights = model.transformer().tensors();
            assertEquals(DType.MXFP4, weights.get("layers.0.moe.experts.1.gate_proj.weight").dtype());
            assertEquals(DType.MXFP4, weights.get("layers.2.moe.experts.3.down_proj.weight").dtype());
        }
    }

    @Test
    void mxfp4BlocksWithoutTheirScalesAreRefused() throws IOException {
        Path quantised = dir.resolve("mxfp4");
        var tensors = save(quantised, "gpt_oss", "\"hidden_size\":64,\"intermediate_size\":64");
        var stored = new LinkedHashMap<String, Tensor>();
        tensors.forEach((name, t) -> {
            if (name.endsWith("experts.gate_up_proj")) {
                stored.put(name + "_blocks", Tensor.zeros(DType.U8, 4, 128, 2, 16));
                stored.put(name + "_scales", Tensor.zeros(DType.U8, 4, 128, 2));
            } else if (name.endsWith("experts.down_proj")) {
                stored.put(name + "_blocks", Tensor.zeros(DType.U8, 4, 64, 2, 16));
            } else {
                stored.put(name, t);
            }
        });
        SafetensorsWriter.write(quantised.resolve("model.safetensors"), stored);
        addQuantisationConfig(quantised, "{\"quant_method\":\"mxfp4\"}");
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(quantised));
        assertFalse(e.getMessage().contains("\n"));
        assertTrue(e.getMessage().contains("down_proj_blocks' has no 'model.layers.0.mlp.experts.down_proj_scales'"),
                e.getMessage());
    }

    // ---- block-scaled FP8 ----

    /** Quantises every matrix but the embeddings, LM head and routers to E4M3 with one scale per tile. */
    private static Map<String, Tensor> fp8(Map<String, Tensor> tensors, int tile, DType scaleType) {
        var stored = new LinkedHashMap<String, Tensor>();
        for (var entry : tensors.entrySet()) {
            String name = entry.getKey();
            Tensor t = entry.getValue();
            if (t.rank() != 2 || name.contains("embed_tokens") || name.startsWith("lm_head")
                    || name.endsWith("mlp.gate.weight")) {
                stored.put(name, t);
                continue;
            }
            int rows = t.dim(0), cols = t.dim(1);
            int scaleRows = Math.ceilDiv(rows, tile), scaleCols = Math.ceilDiv(cols, tile);
            Tensor scales = Tensor.zeros(scaleRows, scaleCols);
            byte[] codes = new byte[rows * cols];
            for (int i = 0; i < scaleRows; i++) {
                for (int j = 0; j < scaleCols; j++) {
                    float amax = 0;
                    for (int r = i * tile; r < Math.min(rows, (i + 1) * tile); r++) {
                        for (int c = j * tile; c < Math.min(cols, (j + 1) * tile); c++) {
                            amax = Math.max(amax, Math.abs(t.getFloat((long) r * cols + c)));
                        }
                    }
                    // the scale as the checkpoint stores it (BF16 rounds it), then codes against that scale
                    float scale = Tensor.vector(amax / E4m3BlockCodec.MAX).to(scaleType).getFloat(0);
                    scales.setFloat((long) i * scaleCols + j, scale);
                    for (int r = i * tile; r < Math.min(rows, (i + 1) * tile); r++) {
                        for (int c = j * tile; c < Math.min(cols, (j + 1) * tile); c++) {
                            long at = (long) r * cols + c;
                            int code = E4m3BlockCodec.encode(t.getFloat(at) / scale);
                            codes[(int) at] = (byte) code;
                            t.setFloat(at, E4m3BlockCodec.value(code) * scale);
                        }
                    }
                }
            }
            stored.put(name, Tensor.wrap(DType.F8_E4M3, java.lang.foreign.MemorySegment.ofArray(codes), rows, cols));
            stored.put(name + "_scale_inv", scales.to(scaleType));
        }
        return stored;
    }

    private void fp8MatchesItsValues(String family, String extra, int tile, DType scaleType, DType expected)
            throws IOException {
        Path plain = dir.resolve(family), quantised = dir.resolve(family + "-fp8");
        var tensors = save(plain, family, extra);
        save(quantised, family, extra);
        var stored = fp8(tensors, tile, scaleType);
        SafetensorsWriter.write(plain.resolve("model.safetensors"), tensors);
        SafetensorsWriter.write(quantised.resolve("model.safetensors"), stored);
        addQuantisationConfig(quantised, "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"activation_scheme\":"
                + "\"dynamic\",\"weight_block_size\":[" + tile + "," + tile + "]}");
        try (var reference = ModelLoader.load(plain, dev.moe4j.core.backend.CpuBackend.INSTANCE, WeightMemory.MAPPED);
             var model = ModelLoader.load(quantised, dev.moe4j.core.backend.CpuBackend.INSTANCE, WeightMemory.COPIED)) {
            double error = relativeError(reference, model);
            assertTrue(error < 1e-5, family + ": relative logits error " + error);
            assertEquals(expected, model.transformer().tensors().get("layers.1.moe.experts.0.up_proj.weight").dtype());
            assertEquals(DType.F32, model.transformer().tensors().get("embed_tokens.weight").dtype());
        }
    }

    @Test
    void deepseekFp8MatricesInTilesOf32RunFromE4m3Blocks() throws IOException {
        // kv_a_proj_with_mqa has 36 rows: its second row of tiles is partial
        fp8MatchesItsValues("deepseek_v3", "\"hidden_size\":64,\"moe_intermediate_size\":32,\"intermediate_size\":64,"
                + "\"q_lora_rank\":32,\"kv_lora_rank\":32,\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":4,"
                + "\"v_head_dim\":16", 32, DType.F32, DType.F8_E4M3_B32);
    }

    @Test
    void fp8MatricesWhoseTilesAreNarrowerThanABlockAreDecodedToF32() throws IOException {
        fp8MatchesItsValues("qwen3_moe", "\"hidden_size\":64,\"moe_intermediate_size\":24,\"head_dim\":16",
                16, DType.BF16, DType.F32);
    }

    @Test
    void anFp8MatrixWithoutItsScalesIsRefused() throws IOException {
        Path quantised = dir.resolve("fp8");
        var stored = fp8(save(quantised, "qwen3_moe", ""), 8, DType.F32);
        stored.remove("model.layers.1.self_attn.o_proj.weight_scale_inv");
        SafetensorsWriter.write(quantised.resolve("model.safetensors"), stored);
        addQuantisationConfig(quantised, "{\"quant_method\":\"fp8\",\"weight_block_size\":[8,8]}");
        var e = assertThrows(BadInputException.class, () -> ModelLoader.load(quantised));
        assertTrue(e.getMessage().contains("F8_E4M3 tensor 'model.layers.1.self_attn.o_proj.weight' has no "
                + "'model.layers.1.self_attn.o_proj.weight_scale_inv'"), e.getMessage());
    }
}
