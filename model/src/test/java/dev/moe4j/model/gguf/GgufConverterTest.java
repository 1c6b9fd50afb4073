package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Rope;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.gguf.GgufValue;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.model.Resources;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class GgufConverterTest {
    @TempDir
    Path dir;

    private static byte[] bytes(Tensor t) {
        byte[] b = new byte[(int) t.byteSize()];
        MemorySegment.copy(t.segment(), 0, MemorySegment.ofArray(b), 0, b.length);
        return b;
    }

    private static long key(GgufReader r, String key) {
        return r.metadata().get(key).orElseThrow(() -> new AssertionError("no " + key)).longValue();
    }

    @Test
    void mixtralBecomesLlamaWithStackedExpertsAndPairedQueryKeyRows() {
        Path folder = Resources.fixture("mixtral");
        Path out = dir.resolve("mixtral.gguf");
        var result = GgufConverter.convert(folder, out, Optional.empty());
        assertEquals("llama", result.architecture());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            var m = gguf.metadata();
            assertEquals("llama", m.get("general.architecture").orElseThrow().stringValue());
            assertEquals(2, key(gguf, "llama.block_count"));
            assertEquals(64, key(gguf, "llama.embedding_length"));
            assertEquals(96, key(gguf, "llama.feed_forward_length"));
            assertEquals(4, key(gguf, "llama.attention.head_count"));
            assertEquals(2, key(gguf, "llama.attention.head_count_kv"));
            assertEquals(8, key(gguf, "llama.expert_count"));
            assertEquals(2, key(gguf, "llama.expert_used_count"));
            assertEquals(128, key(gguf, "llama.context_length"));
            assertEquals(16, key(gguf, "llama.rope.dimension_count"));
            assertEquals(1e6, m.get("llama.rope.freq_base").orElseThrow().doubleValue());
            assertEquals(1e-6f, (float) m.get("llama.attention.layer_norm_rms_epsilon").orElseThrow().doubleValue());
            assertEquals(0, key(gguf, "general.file_type"), "all F32");
            assertEquals("llama", m.get("tokenizer.ggml.model").orElseThrow().stringValue(), "metaspace tokenizer");
            assertEquals(512, m.get("tokenizer.ggml.tokens").orElseThrow().elements().size());
            assertEquals(1, key(gguf, "tokenizer.ggml.bos_token_id"));
            assertEquals(2, key(gguf, "tokenizer.ggml.eos_token_id"));

            var names = gguf.tensors().stream().map(GgufTensorInfo::name).toList();
            assertEquals(3 + 2 * 10, names.size(), "per layer: 2 norms, q k v o, router, 3 stacked projections");
            assertEquals("token_embd.weight", names.getFirst());
            assertEquals(List.of("output_norm.weight", "output.weight"), names.subList(names.size() - 2, names.size()));
            assertArrayEquals(new int[] {8, 96, 64}, gguf.tensor("blk.1.ffn_gate_exps.weight").shape());
            assertArrayEquals(new int[] {8, 64, 96}, gguf.tensor("blk.1.ffn_down_exps.weight").shape());
            assertArrayEquals(new int[] {8, 64}, gguf.tensor("blk.0.ffn_gate_inp.weight").shape());

            assertArrayEquals(bytes(hf.tensor("model.embed_tokens.weight")), bytes(gguf.tensor("token_embd.weight")));
            assertArrayEquals(bytes(hf.tensor("lm_head.weight")), bytes(gguf.tensor("output.weight")));
            assertArrayEquals(bytes(hf.tensor("model.layers.1.self_attn.v_proj.weight")),
                    bytes(gguf.tensor("blk.1.attn_v.weight")));
            assertArrayEquals(bytes(hf.tensor("model.layers.1.post_attention_layernorm.weight")),
                    bytes(gguf.tensor("blk.1.ffn_norm.weight")));
            for (int e = 0; e < 8; e++) {
                for (String[] p : new String[][] {{"gate", "w1"}, {"up", "w3"}, {"down", "w2"}}) {
                    assertArrayEquals(bytes(hf.tensor("model.layers.1.block_sparse_moe.experts." + e + "." + p[1]
                                    + ".weight")), bytes(gguf.tensor("blk.1.ffn_" + p[0] + "_exps.weight").select(e)),
                            p[0] + " of expert " + e);
                }
            }
            // Within each head of 16, rows j and j + 8 of the checkpoint become rows 2j and 2j + 1.
            Tensor q = hf.tensor("model.layers.0.self_attn.q_proj.weight");
            Tensor paired = gguf.tensor("blk.0.attn_q.weight");
            Tensor k = hf.tensor("model.layers.0.self_attn.k_proj.weight");
            Tensor pairedK = gguf.tensor("blk.0.attn_k.weight");
            for (int h = 0; h < 4; h++) {
                for (int j = 0; j < 8; j++) {
                    for (int s = 0; s < 2; s++) {
                        assertArrayEquals(bytes(q.select(h * 16 + s * 8 + j)), bytes(paired.select(h * 16 + 2 * j + s)));
                        if (h < 2) {
                            assertArrayEquals(bytes(k.select(h * 16 + s * 8 + j)),
                                    bytes(pairedK.select(h * 16 + 2 * j + s)));
                        }
                    }
                }
            }
        }
    }

    @Test
    void gptOssExpertsAreSplitIntoGateAndUpAndTransposedWithTheirBiasesAndTheSinksKept() {
        Path folder = Resources.fixture("gpt-oss");
        Path out = dir.resolve("gpt-oss.gguf");
        var result = GgufConverter.convert(folder, out, Optional.empty());
        assertEquals("gpt-oss", result.architecture());
        assertEquals(1, result.notes().size(), "llama.cpp rounds YaRN's correction range: " + result.notes());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            var m = gguf.metadata();
            assertEquals(48, key(gguf, "gpt-oss.expert_feed_forward_length"));
            assertEquals(4, key(gguf, "gpt-oss.attention.sliding_window"));
            assertEquals(16, key(gguf, "gpt-oss.attention.key_length"));
            assertEquals(8, key(gguf, "gpt-oss.expert_count"));
            assertEquals(150000.0, m.get("gpt-oss.rope.freq_base").orElseThrow().doubleValue());
            assertEquals("yarn", m.get("gpt-oss.rope.scaling.type").orElseThrow().stringValue());
            assertEquals(32.0, m.get("gpt-oss.rope.scaling.factor").orElseThrow().doubleValue());
            assertEquals(4096, key(gguf, "gpt-oss.rope.scaling.original_context_length"));
            assertTrue(gguf.info("blk.1.ffn_norm.weight").isEmpty(), "gpt-oss names its pre-FFN norm otherwise");
            assertArrayEquals(bytes(hf.tensor("model.layers.1.post_attention_layernorm.weight")),
                    bytes(gguf.tensor("blk.1.post_attention_norm.weight")));
            assertArrayEquals(bytes(hf.tensor("model.layers.1.self_attn.sinks")),
                    bytes(gguf.tensor("blk.1.attn_sinks.weight")));
            assertArrayEquals(bytes(hf.tensor("model.layers.1.self_attn.o_proj.bias")),
                    bytes(gguf.tensor("blk.1.attn_output.bias")));
            assertArrayEquals(bytes(hf.tensor("model.layers.1.mlp.router.bias")),
                    bytes(gguf.tensor("blk.1.ffn_gate_inp.bias")));

            Tensor gateUp = hf.tensor("model.layers.1.mlp.experts.gate_up_proj"); // [E, H, 2I], gate and up interleaved
            Tensor gateUpBias = hf.tensor("model.layers.1.mlp.experts.gate_up_proj_bias");
            Tensor down = hf.tensor("model.layers.1.mlp.experts.down_proj"); // [E, I, H]
            Tensor gate = gguf.tensor("blk.1.ffn_gate_exps.weight"), up = gguf.tensor("blk.1.ffn_up_exps.weight");
            Tensor downs = gguf.tensor("blk.1.ffn_down_exps.weight");
            assertArrayEquals(new int[] {8, 48, 64}, gate.shape());
            assertArrayEquals(new int[] {8, 64, 48}, downs.shape());
            for (int e = 0; e < 8; e++) {
                for (int i = 0; i < 48; i++) {
                    for (int h = 0; h < 64; h++) {
                        assertEquals(gateUp.get(e, h, 2 * i), gate.get(e, i, h));
                        assertEquals(gateUp.get(e, h, 2 * i + 1), up.get(e, i, h));
                        assertEquals(down.get(e, i, h), downs.get(e, h, i));
                    }
                    assertEquals(gateUpBias.get(e, 2 * i), gguf.tensor("blk.1.ffn_gate_exps.bias").get(e, i));
                    assertEquals(gateUpBias.get(e, 2 * i + 1), gguf.tensor("blk.1.ffn_up_exps.bias").get(e, i));
                }
            }
            assertArrayEquals(bytes(hf.tensor("model.layers.1.mlp.experts.down_proj_bias")),
                    bytes(gguf.tensor("blk.1.ffn_down_exps.bias")));
        }
    }

    @Test
    void deepseekV3KeepsItsLatentAttentionWithKvBSplitAsLlamaCppsConverterSplitsIt() {
        Path folder = Resources.fixture("deepseek-v3");
        Path out = dir.resolve("deepseek.gguf");
        assertEquals("deepseek2", GgufConverter.convert(folder, out, Optional.empty()).architecture());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            var m = gguf.metadata();
            // the latent as llama.cpp caches it: one key head of latent + rope, the heads' widths under _mla
            assertEquals(1, key(gguf, "deepseek2.attention.head_count_kv"));
            assertEquals(32 + 8, key(gguf, "deepseek2.attention.key_length"));
            assertEquals(32, key(gguf, "deepseek2.attention.value_length"));
            assertEquals(24, key(gguf, "deepseek2.attention.key_length_mla"));
            assertEquals(16, key(gguf, "deepseek2.attention.value_length_mla"));
            assertEquals(8, key(gguf, "deepseek2.rope.dimension_count"));
            assertEquals(48, key(gguf, "deepseek2.attention.q_lora_rank"));
            assertEquals(32, key(gguf, "deepseek2.attention.kv_lora_rank"));
            assertEquals(1, key(gguf, "deepseek2.leading_dense_block_count"));
            assertEquals(128, key(gguf, "deepseek2.feed_forward_length"));
            assertEquals(32, key(gguf, "deepseek2.expert_feed_forward_length"));
            assertEquals(1, key(gguf, "deepseek2.expert_shared_count"));
            assertEquals(2, key(gguf, "deepseek2.expert_gating_func"), "sigmoid");
            assertEquals(4, key(gguf, "deepseek2.expert_group_count"));
            assertEquals(2, key(gguf, "deepseek2.expert_group_used_count"));
            assertEquals(2.5, m.get("deepseek2.expert_weights_scale").orElseThrow().doubleValue());
            assertTrue(m.get("deepseek2.expert_weights_norm").orElseThrow().booleanValue());

            Tensor kvB = hf.tensor("model.layers.1.self_attn.kv_b_proj.weight"); // [4 x (16 + 16), 32]
            Tensor kB = gguf.tensor("blk.1.attn_k_b.weight"), vB = gguf.tensor("blk.1.attn_v_b.weight");
            assertArrayEquals(new int[] {4, 32, 16}, kB.shape());
            assertArrayEquals(new int[] {4, 16, 32}, vB.shape());
            for (int h = 0; h < 4; h++) {
                for (int l = 0; l < 32; l++) {
                    for (int j = 0; j < 16; j++) {
                        assertEquals(kvB.get(h * 32 + j, l), kB.get(h, l, j), "key rows transposed per head");
                        assertEquals(kvB.get(h * 32 + 16 + j, l), vB.get(h, j, l), "value rows as they are");
                    }
                }
            }
            assertTrue(gguf.info("blk.1.attn_kv_b.weight").isEmpty());
            assertArrayEquals(bytes(hf.tensor("model.layers.1.self_attn.kv_a_proj_with_mqa.weight")),
                    bytes(gguf.tensor("blk.1.attn_kv_a_mqa.weight")));
            assertArrayEquals(bytes(hf.tensor("model.layers.2.mlp.gate.e_score_correction_bias")),
                    bytes(gguf.tensor("blk.2.exp_probs_b.bias")));
            assertArrayEquals(bytes(hf.tensor("model.layers.0.mlp.down_proj.weight")),
                    bytes(gguf.tensor("blk.0.ffn_down.weight")), "the leading dense layer");
            assertArrayEquals(bytes(hf.tensor("model.layers.2.mlp.shared_experts.up_proj.weight")),
                    bytes(gguf.tensor("blk.2.ffn_up_shexp.weight")));
            assertTrue(gguf.info("blk.2.ffn_gate_inp_shexp.weight").isEmpty(), "DeepSeek's shared expert has no gate");
            assertTrue(gguf.info("blk.0.ffn_gate_exps.weight").isEmpty());
        }
    }

    @Test
    void pairedRowsRotatedAsLlamaCppDoesGiveTheHalfRotationOfTheCheckpoint() {
        // llama.cpp's llama architecture rotates adjacent pairs; transformers rotates halves. After the reordering,
        // rotating the converted projection's output in pairs equals rotating the original's in halves, element for
        // element once reordered, so every query-key score is the same.
        int heads = 4, d = 16, hidden = 64, position = 37;
        var random = new Random(3);
        float[] w = new float[heads * d * hidden];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) random.nextGaussian();
        }
        Tensor weight = Tensor.of(w, heads * d, hidden);
        float[] x = new float[hidden];
        for (int i = 0; i < hidden; i++) {
            x[i] = (float) random.nextGaussian();
        }
        List<Tensor> rows = GgufConverter.pairOrder(heads, d).stream().map(r -> weight.slice(r, r + 1)).toList();
        float[] half = new float[heads * d];
        float[] pairs = new float[heads * d];
        for (int r = 0; r < heads * d; r++) {
            for (int i = 0; i < hidden; i++) {
                half[r] += weight.getFloat((long) r * hidden + i) * x[i];
                pairs[r] += rows.get(r).getFloat(i) * x[i];
            }
        }
        var table = new RopeTable(RopeFrequencies.standard(1e6, d), 64);
        Tensor halfT = Tensor.of(half, 1, heads * d);
        Tensor pairsT = Tensor.of(pairs, 1, heads * d);
        Rope.forward(halfT, new int[] {position}, table, RopeLayout.HALF, d, d);
        Rope.forward(pairsT, new int[] {position}, table, RopeLayout.INTERLEAVED, d, d);
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < d / 2; j++) {
                for (int s = 0; s < 2; s++) {
                    assertEquals(halfT.getFloat(h * d + s * d / 2 + j), pairsT.getFloat(h * d + 2 * j + s), 1e-5f);
                }
            }
        }
    }

    @Test
    void qwen3MoeKeepsItsRowsAddsQkNormsAndASyntheticVocabulary() {
        Path folder = Resources.fixture("qwen3-moe");
        Path out = dir.resolve("qwen3.gguf");
        var result = GgufConverter.convert(folder, out, Optional.of(GgufFileType.BF16));
        assertEquals("qwen3moe", result.architecture());
        assertEquals(GgufFileType.BF16, result.fileType());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            assertEquals(48, key(gguf, "qwen3moe.expert_feed_forward_length"));
            assertEquals(16, key(gguf, "qwen3moe.expert_count"));
            assertEquals(4, key(gguf, "qwen3moe.expert_used_count"));
            assertEquals(24, key(gguf, "qwen3moe.attention.key_length"));
            assertEquals(32, key(gguf, "general.file_type"), "MOSTLY_BF16");
            var tokens = gguf.metadata().get("tokenizer.ggml.tokens").orElseThrow().elements();
            assertEquals(512, tokens.size());
            assertEquals(512, new java.util.HashSet<>(tokens).size());
            assertEquals(List.of(), gguf.metadata().get("tokenizer.ggml.merges").orElseThrow().elements());

            Tensor q = hf.tensor("model.layers.1.self_attn.q_proj.weight");
            Tensor converted = gguf.tensor("blk.1.attn_q.weight");
            assertEquals(DType.BF16, converted.dtype());
            assertArrayEquals(q.shape(), converted.shape());
            for (long i = 0; i < q.size(); i++) {
                assertEquals(q.getFloat(i), converted.getFloat(i), Math.abs(q.getFloat(i)) / 128, "rows stay in order");
            }
            Tensor qNorm = gguf.tensor("blk.1.attn_q_norm.weight");
            assertEquals(DType.F32, qNorm.dtype(), "norms stay F32");
            assertArrayEquals(bytes(hf.tensor("model.layers.1.self_attn.q_norm.weight")), bytes(qNorm));
            assertEquals(DType.F32, gguf.tensor("blk.1.ffn_gate_inp.weight").dtype(), "routers stay F32");
            assertArrayEquals(new int[] {16, 48, 64}, gguf.tensor("blk.0.ffn_up_exps.weight").shape());
        }
    }

    @Test
    void bf16WeightsInShardsKeepTheirBytesWhenTheTypeIsKept() {
        Path folder = Resources.fixture("mixtral-bf16-sharded");
        Path out = dir.resolve("bf16.gguf");
        var result = GgufConverter.convert(folder, out, Optional.empty());
        assertEquals(GgufFileType.BF16, result.fileType());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            assertArrayEquals(bytes(hf.tensor("model.layers.0.block_sparse_moe.experts.3.w2.weight")),
                    bytes(gguf.tensor("blk.0.ffn_down_exps.weight").select(3)));
            Tensor norm = hf.tensor("model.norm.weight");
            Tensor widened = gguf.tensor("output_norm.weight");
            assertEquals(DType.F32, widened.dtype());
            for (long i = 0; i < norm.size(); i++) {
                assertEquals(norm.getFloat(i), widened.getFloat(i));
            }
        }
    }

    /** A qwen3_moe folder with rows of 256 (whole K-quant blocks) and 8 layers (llama.cpp's layer rules apply). */
    private Path blockShapedModel() {
        String json = "{\"model_type\": \"qwen3_moe\", \"vocab_size\": 64, \"hidden_size\": 256,"
                + " \"num_hidden_layers\": 8, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                + " \"head_dim\": 64, \"num_experts\": 2, \"num_experts_per_tok\": 1,"
                + " \"moe_intermediate_size\": 256, \"intermediate_size\": 768, \"norm_topk_prob\": true,"
                + " \"decoder_sparse_step\": 1, \"mlp_only_layers\": [], \"max_position_embeddings\": 64,"
                + " \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": false,"
                + " \"initializer_range\": 0.02}";
        var config = dev.moe4j.model.family.HfFamilies.read(dev.moe4j.io.json.Json.parse(json, "test"), "test");
        Path folder = dir.resolve("blocks");
        dev.moe4j.model.ModelSaver.save(dev.moe4j.model.transformer.Transformer.initialize(config, 3), folder,
                "qwen3_moe", DType.BF16, dev.moe4j.model.ModelSaver.DEFAULT_SHARD_BYTES);
        return folder;
    }

    /** The relative RMSE of {@code decoded} against {@code original}. */
    private static double relativeError(Tensor original, Tensor decoded) {
        float[] a = original.toFloatArray();
        float[] b = decoded.toFloatArray();
        double error = 0;
        double power = 0;
        for (int i = 0; i < a.length; i++) {
            error += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
            power += (double) a[i] * a[i];
        }
        return Math.sqrt(error / power);
    }

    @Test
    void aQ4KMConversionHasLlamaCppsTypesAndDecodesWithinEachTypesError() {
        Path folder = blockShapedModel();
        Path out = dir.resolve("q4km.gguf");
        var result = GgufConverter.convert(folder, out, Optional.of(GgufFileType.Q4_K_M));
        assertEquals(GgufFileType.Q4_K_M, result.fileType());
        try (var gguf = GgufReader.open(out); var hf = Checkpoint.open(folder)) {
            assertEquals(15, key(gguf, "general.file_type"));
            assertEquals(2, key(gguf, "general.quantization_version"));
            for (int layer = 0; layer < 8; layer++) {
                DType more = layer == 0 || layer == 3 || layer == 6 || layer == 7 ? DType.Q6_K : DType.Q4_K;
                String blk = "blk." + layer + ".";
                assertEquals(more, gguf.tensor(blk + "attn_v.weight").dtype(), blk);
                assertEquals(more, gguf.tensor(blk + "ffn_down_exps.weight").dtype(), blk);
                assertEquals(DType.Q4_K, gguf.tensor(blk + "attn_q.weight").dtype(), blk);
                assertEquals(DType.Q4_K, gguf.tensor(blk + "ffn_up_exps.weight").dtype(), blk);
                assertEquals(DType.F32, gguf.tensor(blk + "attn_q_norm.weight").dtype(), blk);
                assertEquals(DType.F32, gguf.tensor(blk + "ffn_gate_inp.weight").dtype(), blk);
            }
            assertEquals(DType.Q6_K, gguf.tensor("output.weight").dtype());
            assertEquals(DType.Q4_K, gguf.tensor("token_embd.weight").dtype());
            // a Gaussian's relative RMSE is about a step over sqrt(12): ~1/120 of the range in 4 bits, ~1/500 in 6
            assertTrue(relativeError(hf.tensor("lm_head.weight"), gguf.tensor("output.weight")) < 0.02);
            assertTrue(relativeError(hf.tensor("model.layers.2.self_attn.v_proj.weight"),
                    gguf.tensor("blk.2.attn_v.weight")) < 0.12);
            assertTrue(relativeError(hf.tensor("model.layers.3.self_attn.v_proj.weight"),
                    gguf.tensor("blk.3.attn_v.weight")) < 0.02);
            assertTrue(relativeError(hf.tensor("model.layers.5.mlp.experts.1.down_proj.weight"),
                    gguf.tensor("blk.5.ffn_down_exps.weight").select(1)) < 0.12);
            assertArrayEquals(bytes(hf.tensor("model.layers.5.self_attn.k_norm.weight").to(DType.F32)),
                    bytes(gguf.tensor("blk.5.attn_k_norm.weight")));
        }
    }

    @Test
    void quantisingAConvertedFileGivesWhatConvertingStraightToTheTypeGives() {
        Path folder = blockShapedModel();
        Path same = dir.resolve("same.gguf");
        Path direct = dir.resolve("direct.gguf");
        Path requantised = dir.resolve("requantised.gguf");
        GgufConverter.convert(folder, same, Optional.empty());
        GgufConverter.convert(folder, direct, Optional.of(GgufFileType.Q4_K_M));
        var result = GgufQuantizer.quantize(same, requantised, GgufFileType.Q4_K_M);
        try (var a = GgufReader.open(direct); var b = GgufReader.open(requantised)) {
            assertEquals(a.tensors().size(), result.tensors());
            for (GgufTensorInfo info : a.tensors()) {
                assertEquals(info.type(), b.info(info.name()).orElseThrow().type(), info.name());
                assertArrayEquals(bytes(a.tensor(info.name())), bytes(b.tensor(info.name())), info.name());
            }
            assertEquals(a.metadata().entries(), b.metadata().entries());
        }
        Path q8 = dir.resolve("q8.gguf");
        GgufQuantizer.quantize(requantised, q8, GgufFileType.Q8_0);
        try (var gguf = GgufReader.open(q8); var hf = Checkpoint.open(folder)) {
            assertEquals(7, key(gguf, "general.file_type"));
            assertEquals(DType.Q8_0, gguf.tensor("blk.0.attn_v.weight").dtype());
            assertEquals(DType.F32, gguf.tensor("blk.0.attn_norm.weight").dtype());
            assertTrue(relativeError(hf.tensor("model.layers.1.self_attn.q_proj.weight"),
                    gguf.tensor("blk.1.attn_q.weight")) < 0.12, "Q4_K's error, with Q8_0's on top");
        }
    }

    @Test
    void quantisingAFileWithoutItsLayerCountIsOneLineNamingTheKey() {
        Path folder = Resources.fixture("qwen3-moe");
        Path gguf = dir.resolve("in.gguf");
        GgufConverter.convert(folder, gguf, Optional.empty());
        Path broken = dir.resolve("broken.gguf");
        var keep = dev.moe4j.io.gguf.GgufMetadata.builder();
        var tensors = new ArrayList<dev.moe4j.io.gguf.GgufTensor>();
        try (var reader = GgufReader.open(gguf)) {
            reader.metadata().entries().forEach((k, v) -> {
                if (!k.endsWith(".block_count")) {
                    keep.put(k, v);
                }
            });
            for (GgufTensorInfo info : reader.tensors()) {
                tensors.add(dev.moe4j.io.gguf.GgufTensor.of(info.name(), info.type(), reader.tensor(info.name())));
            }
            dev.moe4j.io.gguf.GgufWriter.write(broken, keep.build(), tensors);
        }
        Path out = dir.resolve("out.gguf");
        var e = assertThrows(BadInputException.class, () -> GgufQuantizer.quantize(broken, out, GgufFileType.Q8_0));
        assertEquals(broken + ": metadata 'qwen3moe.block_count' is missing", e.getMessage());
        assertFalse(Files.exists(out));
    }

    @Test
    void aConfigLlamaCppWouldComputeDifferentlyIsRefusedAndNothingIsWritten() throws IOException {
        Path folder = dir.resolve("no-renorm");
        Files.createDirectories(folder);
        Path fixture = Resources.fixture("qwen3-moe");
        Files.copy(fixture.resolve("model.safetensors"), folder.resolve("model.safetensors"));
        Files.writeString(folder.resolve("config.json"), Files.readString(fixture.resolve("config.json"))
                .replace("\"norm_topk_prob\": true", "\"norm_topk_prob\": false"));
        Path out = dir.resolve("out.gguf");
        var e = assertThrows(BadInputException.class, () -> GgufConverter.convert(folder, out, Optional.empty()));
        assertTrue(e.getMessage().startsWith(folder.resolve("config.json") + ": the model has top-k weights that are"
                + " not renormalised"), e.getMessage());
        assertFalse(Files.exists(out));

        Path halves = dir.resolve("halves");
        Files.createDirectories(halves);
        Path deepseek = Resources.fixture("deepseek-v3");
        Files.copy(deepseek.resolve("model.safetensors"), halves.resolve("model.safetensors"));
        Files.writeString(halves.resolve("config.json"), Files.readString(deepseek.resolve("config.json"))
                .replace("\"rope_interleave\": true", "\"rope_interleave\": false"));
        var rope = assertThrows(BadInputException.class, () -> GgufConverter.convert(halves, out, Optional.empty()));
        assertTrue(rope.getMessage().startsWith(halves.resolve("config.json") + ": the model has RoPE on the two"
                + " halves of the rotary part"), rope.getMessage());
        var everyLayerSlides = dev.moe4j.model.TinyModels.config("gpt_oss", "\"layer_types\": [\"sliding_attention\","
                + " \"sliding_attention\", \"sliding_attention\"]");
        var window = assertThrows(BadInputException.class, () -> GgufConverter.writeRandom(everyLayerSlides,
                "gpt_oss flags", 1, out, GgufFileType.F32));
        assertTrue(window.getMessage().startsWith("gpt_oss flags: the model has layers other than a sliding window"
                + " on the even ones"), window.getMessage());
        var custom = dev.moe4j.model.TinyModels.config("mixtral", "").toBuilder()
                .family(dev.moe4j.model.config.ModelConfig.CUSTOM_FAMILY).build();
        var unknown = assertThrows(BadInputException.class, () -> GgufConverter.writeRandom(custom, "flags", 1, out,
                GgufFileType.F32));
        assertTrue(unknown.getMessage().contains("model_type 'moe4j' cannot be converted to GGUF yet"),
                unknown.getMessage());
        var notAFile = assertThrows(BadInputException.class, () -> GgufConverter.convert(Resources.fixture("mixtral"),
                dir, Optional.empty()));
        assertTrue(notAFile.getMessage().contains("is a folder"), notAFile.getMessage());
        try (var files = Files.list(dir)) {
            assertEquals(java.util.Set.of(folder, halves), new java.util.HashSet<>(files.toList()),
                    "no partial or temporary file");
        }
    }
}
