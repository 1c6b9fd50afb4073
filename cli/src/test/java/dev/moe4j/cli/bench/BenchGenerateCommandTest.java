package dev.moe4j.cli.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.Main;
import dev.moe4j.core.Parallel;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.family.HfFamilies;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** make-model and bench generate on a tiny model: what they write and report, never how fast. */
class BenchGenerateCommandTest {
    @TempDir
    Path dir;

    private final int threads = Parallel.threads();
    private final StringWriter out = new StringWriter(), err = new StringWriter();

    @AfterEach
    void restoreThreads() {
        Parallel.setThreads(threads);
    }

    private int run(String... args) {
        out.getBuffer().setLength(0);
        err.getBuffer().setLength(0);
        return Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
    }

    private Path tinyModel() {
        Path model = dir.resolve("tiny");
        int status = run("bench", "make-model", "--out", model.toString(), "--layers", "2", "--hidden", "64",
                "--heads", "4", "--kv-heads", "2", "--experts", "8", "--top-k", "2", "--expert-size", "32",
                "--vocab", "300", "--context", "64", "--seed", "3");
        assertEquals(0, status, err.toString());
        return model;
    }

    @Test
    void makeModelWritesAQwen3MoeFolderThatLoads() {
        Path model = tinyModel();
        ModelConfig config = HfFamilies.load(model.resolve("config.json"));
        assertEquals("qwen3_moe", config.family());
        assertEquals(2, config.numLayers());
        assertEquals(64, config.hiddenSize());
        assertEquals(300, config.vocabSize());
        assertEquals(8, config.moe().orElseThrow().experts());
        assertEquals("BF16", config.dtype().name());
        assertTrue(Files.exists(model.resolve("model.safetensors")));
        try (var lm = ModelLoader.load(model)) {
            assertEquals(2, lm.config().numLayers());
        }
        assertTrue(err.toString().contains("qwen3_moe, 2 layers, 8 experts top-2"), err.toString());
    }

    @Test
    void makeModelWritesAGgufFileOfTheTypeAskedForWhenTheOutputEndsInGguf() {
        Path file = dir.resolve("tiny.gguf");
        int status = run("bench", "make-model", "--out", file.toString(), "--type", "q8_0", "--layers", "2",
                "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--experts", "8",
                "--top-k", "2", "--expert-size", "32", "--vocab", "300", "--context", "64");
        assertEquals(0, status, err.toString());
        assertTrue(err.toString().contains("wrote " + file + ": qwen3moe, "), err.toString());
        try (var gguf = GgufReader.open(file)) {
            assertEquals(7, gguf.metadata().get("general.file_type").orElseThrow().longValue(), "llama.cpp's Q8_0");
            assertEquals(32, gguf.metadata().get("qwen3moe.attention.key_length").orElseThrow().longValue());
            assertEquals(2, gguf.metadata().get("qwen3moe.expert_used_count").orElseThrow().longValue());
            assertEquals(300, gguf.metadata().get("tokenizer.ggml.tokens").orElseThrow().elements().size());
            assertEquals(GgmlType.Q8_0, gguf.info("blk.1.ffn_up_exps.weight").orElseThrow().type());
            assertArrayEquals(new int[] {8, 32, 64}, gguf.info("blk.1.ffn_up_exps.weight").orElseThrow().shape());
            assertArrayEquals(new int[] {128, 64}, gguf.info("blk.0.attn_q.weight").orElseThrow().shape());
        }
    }

    @Test
    void makeModelWritesGptOssAndDeepseekV3AsFoldersAndGgufFilesThatLoadAlike() {
        String[][] families = {
                {"gpt_oss", "gpt-oss", "--sliding-window", "4", "--head-dim", "16"},
                {"deepseek_v3", "deepseek2", "--q-lora-rank", "32", "--kv-lora-rank", "16", "--rope-dim", "8",
                        "--dense-layers", "1", "--dense-size", "64", "--groups", "4", "--top-groups", "2",
                        "--shared-experts", "1", "--head-dim", "16"}};
        for (String[] f : families) {
            var common = new java.util.ArrayList<>(java.util.List.of("bench", "make-model", "--family", f[0],
                    "--layers", "3", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--experts", "8",
                    "--top-k", "2", "--expert-size", "32", "--vocab", "300", "--context", "64", "--seed", "5"));
            common.addAll(java.util.List.of(f).subList(2, f.length));
            Path folder = dir.resolve(f[0]), file = dir.resolve(f[0] + ".gguf");
            var toFolder = new java.util.ArrayList<>(common);
            toFolder.addAll(java.util.List.of("--dtype", "F32", "--out", folder.toString()));
            assertEquals(0, run(toFolder.toArray(String[]::new)), err.toString());
            var toFile = new java.util.ArrayList<>(common);
            toFile.addAll(java.util.List.of("--type", "f32", "--out", file.toString()));
            assertEquals(0, run(toFile.toArray(String[]::new)), err.toString());
            assertTrue(err.toString().contains("wrote " + file + ": " + f[1] + ", "), err.toString());
            int[] prompt = {1, 17, 250, 42, 5, 299};
            // the file's YaRN is llama.cpp's, its correction range rounded: the folder is run so too
            var rope = ModelLoader.config(folder).rope();
            if (rope.scaling() instanceof dev.moe4j.model.config.RopeConfig.Yarn y) {
                rope = new dev.moe4j.model.config.RopeConfig(rope.theta(), new dev.moe4j.model.config.RopeConfig.Yarn(
                        y.factor(), y.originalMaxPositions(), y.betaFast(), y.betaSlow(), y.mscale(), y.mscaleAllDim(),
                        y.attentionFactor(), true), rope.layout(), rope.partialRotaryFactor());
            }
            var config = ModelLoader.config(folder).toBuilder().rope(rope).build();
            try (var a = ModelLoader.load(folder, config, dev.moe4j.core.backend.CpuBackend.INSTANCE,
                    dev.moe4j.model.WeightMemory.MAPPED); var b = ModelLoader.load(file)) {
                assertEquals(a.config().attention(), b.config().attention(), f[0]);
                var x = a.forward(a.newState(prompt.length), prompt, false, null);
                var y = b.forward(b.newState(prompt.length), prompt, false, null);
                double scale = 0, diff = 0;
                for (long i = 0; i < x.size(); i++) {
                    scale = Math.max(scale, Math.abs(x.getFloat(i)));
                    diff = Math.max(diff, Math.abs(x.getFloat(i) - y.getFloat(i)));
                }
                assertTrue(diff <= 1e-6 * scale, f[0] + ": " + diff / scale);
            }
        }
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", dir.resolve("q").toString(),
                "--kv-lora-rank", "16"));
        assertEquals("moe4j: error: --kv-lora-rank: sets what only deepseek_v3 models have, not qwen3_moe's\n",
                err.toString());
    }

    @Test
    void makeModelTakesDtypeForAFolderAndTypeForAGgufFile() {
        Path file = dir.resolve("m.gguf");
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", file.toString(), "--dtype", "F32"));
        assertEquals("moe4j: error: --dtype: a folder's option; a GGUF file (--out " + file + ") takes --type\n",
                err.toString());
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", file.toString(), "--type", "q3_k"));
        assertTrue(err.toString().startsWith("moe4j: error: --type: expected one of f32, f16, bf16, q8_0"),
                err.toString());
        Path folder = dir.resolve("m");
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", folder.toString(), "--type", "q8_0"));
        assertTrue(err.toString().startsWith("moe4j: error: --type: a GGUF file's option"), err.toString());
        assertFalse(Files.exists(file));
        assertFalse(Files.exists(folder));
    }

    @Test
    void makeModelRefusesAFolderThatHoldsSomething() throws IOException {
        Files.writeString(dir.resolve("keep.txt"), "mine");
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", dir.toString()));
        assertEquals("moe4j: error: " + dir + ": exists and is not empty; give a new folder\n", err.toString());
        assertEquals("mine", Files.readString(dir.resolve("keep.txt")));
    }

    @Test
    void makeModelRefusesShapesThatDoNotFit() {
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "make-model", "--out", dir.resolve("m").toString(),
                "--experts", "4", "--top-k", "8"));
        assertTrue(err.toString().startsWith("moe4j: error: "), err.toString());
        assertFalse(Files.exists(dir.resolve("m")));
    }

    @Test
    void benchGenerateReportsSpeedsAndTheBandwidthLimit() {
        Path model = tinyModel();
        int status = run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1", "--json");
        assertEquals(0, status, err.toString());
        JsonNode o = Json.parse(out.toString(), "stdout");
        assertEquals("generate", o.get("benchmark").asText());
        ModelConfig config = HfFamilies.load(model.resolve("config.json"));
        assertEquals(2 * ParameterCount.of(config).activeWithoutInputEmbedding(),
                o.get("active_bytes_per_token").asLong(), "BF16: two bytes per active weight");
        assertTrue(o.get("decode_tokens_per_s").asDouble() > 0);
        assertTrue(o.get("prefill_tokens_per_s").asDouble() > 0);
        assertEquals(o.get("decode_tokens_per_s").asDouble() / o.get("decode_limit_tokens_per_s").asDouble(),
                o.get("decode_fraction_of_limit").asDouble(), 1e-3);
    }

    @Test
    void benchGenerateJsonCarriesThePromptAndItsGreedyTokensForAnotherEngineToCheck() {
        Path model = tinyModel();
        assertEquals(0, run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1", "--json"),
                err.toString());
        JsonNode o = Json.parse(out.toString(), "stdout");
        int[] prompt = new int[o.get("prompt_ids").size()];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = o.get("prompt_ids").get(i).asInt();
        }
        assertEquals(o.get("prompt_tokens").asInt(), prompt.length);
        // Greedy decoding by hand on the same prompt gives the tokens the benchmark reports.
        try (var lm = ModelLoader.load(model)) {
            var state = lm.newState(prompt.length + o.get("decode_tokens").asInt());
            var logits = lm.forward(state, prompt, true, null);
            JsonNode outputs = o.get("output_ids");
            assertEquals(o.get("decode_tokens").asInt(), outputs.size());
            for (int i = 0; i < outputs.size(); i++) {
                int best = 0;
                for (int v = 1; v < logits.size(); v++) {
                    best = logits.getFloat(v) > logits.getFloat(best) ? v : best;
                }
                assertEquals(best, outputs.get(i).asInt(), "token " + i);
                logits = lm.forward(state, new int[] {best}, true, null);
            }
        }
    }

    @Test
    void benchGenerateRunsTheWarmUpsAskedForAndRefusesANegativeCount() {
        Path model = tinyModel();
        assertEquals(0, run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1", "--json",
                "--warm-ups", "3"), err.toString());
        assertEquals(3, Json.parse(out.toString(), "stdout").get("warm_ups").asInt());
        assertEquals(0, run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1", "--json"),
                err.toString());
        assertEquals(1, Json.parse(out.toString(), "stdout").get("warm_ups").asInt(), "one on the CPU by default");
        assertEquals(2, run("bench", "generate", "--model", model.toString(), "--quick", "--warm-ups", "-1"));
        assertTrue(err.toString().contains("--warm-ups must be 0 or more, got -1"), err.toString());
    }

    @Test
    void benchGenerateTableEndsWithTheRatio() {
        Path model = tinyModel();
        assertEquals(0, run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1"),
                err.toString());
        assertTrue(out.toString().contains("% of the bandwidth limit"), out.toString());
    }

    @Test
    void benchGenerateMeasuresSequencesDecodedTogether() {
        Path model = tinyModel();
        assertEquals(0, run("bench", "generate", "--model", model.toString(), "--quick", "--threads", "1",
                "--sequences", "2,3", "--json"), err.toString());
        JsonNode batched = Json.parse(out.toString(), "stdout").get("batched_decode_tokens_per_s_median_min_max");
        for (String n : List.of("2", "3")) {
            assertEquals(3, batched.get(n).size(), n);
            assertTrue(batched.get(n).get(0).asDouble() > 0, n);
        }
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "generate", "--model", model.toString(), "--quick",
                "--sequences", "0"));
    }

    @Test
    void benchServeMeasuresConcurrentStreamingClientsAgainstAServerInProcess() {
        Path gguf = dir.resolve("tiny.gguf");
        assertEquals(0, run("bench", "make-model", "--out", gguf.toString(), "--type", "f32", "--layers", "2",
                "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--experts", "8", "--top-k", "2", "--expert-size",
                "32", "--vocab", "300", "--context", "64", "--seed", "3"), err.toString());
        assertEquals(0, run("bench", "serve", "--model", gguf.toString(), "--clients", "1,3", "--quick", "--threads",
                "1", "--shared-prefix", "6", "--warm-ups", "2", "--json"), err.toString());
        JsonNode result = Json.parse(out.toString(), "stdout");
        assertEquals(6, result.get("shared_prefix_tokens").asInt());
        assertEquals(2, result.get("warm_ups").asInt());
        assertEquals(256L << 20, result.get("prefix_cache_bytes").asLong());
        JsonNode rows = result.get("rows");
        assertEquals(2, rows.size());
        assertEquals(3, rows.get(1).get("clients").asInt());
        assertEquals(3, rows.get(1).get("completions").asInt());
        assertEquals(0, rows.get(1).get("errors").asInt());
        assertTrue(rows.get(1).get("tokens_per_s").asDouble() > 0);
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "serve", "--model", gguf.toString(), "--clients", "0"));
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "serve", "--model", gguf.toString(), "--prompt-tokens", "8",
                "--shared-prefix", "9"));
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "serve", "--model", gguf.toString(), "--warm-ups", "-1"));
    }
}
