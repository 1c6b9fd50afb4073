package dev.moe4j.cli.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.Main;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.config.Setting;
import dev.moe4j.train.config.TrainSettings;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs the real {@code moe4j train} command line: tiny models, a few steps, temporary folders. */
class TrainCommandTest {
    @TempDir
    Path dir;
    Path data;
    Path cache;

    private record Result(int status, String out, String err) {
    }

    private static Result run(List<String> args) {
        var out = new StringWriter();
        var err = new StringWriter();
        int status = Main.run(args.toArray(String[]::new), new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(status, out.toString(), err.toString());
    }

    private List<String> tiny(String... more) {
        var args = new ArrayList<>(List.of("train", "--tiny", "--data", data.toString(), "--cache", cache.toString(),
                "--out", dir.resolve("run").toString()));
        args.addAll(List.of(more));
        return args;
    }

    @BeforeEach
    void corpus() throws Exception {
        String[] words = {"the", "king", "shall", "speak", "night", "love", "my", "lord", "good", "and", "thee"};
        var random = new SplittableRandom(3);
        var text = new StringBuilder();
        for (int line = 0; line < 300; line++) {
            text.append(line % 4 == 0 ? "KING:\n" : "");
            for (int w = 0; w < 6; w++) {
                text.append(w == 0 ? "" : " ").append(words[random.nextInt(words.length)]);
            }
            text.append(".\n");
        }
        data = dir.resolve("text.txt");
        Files.writeString(data, text);
        cache = dir.resolve("cache");
    }

    private static Path resource(String name) {
        try {
            return Path.of(TrainCommandTest.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aTinyRunTrainsEvaluatesSamplesAndSavesAModelFolderThatLoads() throws Exception {
        Result r = run(tiny());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("training a byte-level BPE of 320 tokens"), r.out());
        assertTrue(r.out().contains("step 5/5 | loss "), r.out());
        assertTrue(r.out().contains("load CV") && r.out().contains("dropped") && r.out().contains("ETA"), r.out());
        assertTrue(r.out().contains("step 5: validation loss"), r.out());
        assertTrue(r.out().contains("--- sample ---"), r.out());
        assertTrue(r.out().contains("generate from it:  ./moe4j generate --model " + dir.resolve("run")), r.out());
        Path run = dir.resolve("run");
        for (String file : List.of("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                RunCheckpoint.TRAIN_CONFIG, RunCheckpoint.STATE, RunCheckpoint.OPTIMIZER, RunCheckpoint.METRICS)) {
            assertTrue(Files.isRegularFile(run.resolve(file)), file);
        }
        assertEquals("mixtral", Json.read(run.resolve("config.json")).get("model_type").asText());
        List<String> metrics = Files.readAllLines(run.resolve(RunCheckpoint.METRICS));
        assertEquals(6, metrics.size(), "5 steps and one evaluation");
        JsonNode step = Json.parse(metrics.getFirst(), "metrics");
        for (String field : List.of("loss", "ce", "aux", "lr", "grad_norm", "tokens_per_s", "routing")) {
            assertTrue(step.has(field), field);
        }
        assertEquals(2, step.get("routing").size(), "one record per MoE layer");
        assertTrue(step.get("routing").get(0).has("load_cv"));
        try (TransformerModel model = ModelLoader.load(run)) {
            Tokenizer tokenizer = Tokenizer.load(run.resolve("tokenizer.json"));
            assertEquals(tokenizer.vocabSize(), model.config().vocabSize());
        }
        // A second run in the same folder continues exactly with --resume.
        Result more = run(tiny("--resume", "--steps", "7"));
        assertEquals(0, more.status(), more.err());
        assertTrue(more.out().contains("resuming at step 5 of 7 steps"), more.out());
        assertEquals(7, RunCheckpoint.state(run).step());
    }

    @Test
    void bf16PrecisionOnTheCpuIsOneLineBeforeAnythingIsTrainedOrSaved() {
        Result r = run(tiny("--device", "cpu", "--precision", "bf16"));
        assertEquals(Main.EXIT_BAD_INPUT, r.status(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: --precision bf16: the CPU computes in F32"), r.err());
        assertEquals(1, r.err().trim().lines().count(), r.err());
        assertFalse(Files.exists(dir.resolve("run")), "nothing saved");
        assertEquals(CpuBackend.INSTANCE, TrainCommand.backend("cpu", "f32", Optional.empty()),
                "f32 is what the CPU does anyway");
    }

    @Test
    void helpListsEveryOptionWithItsDefaultUnderItsGroup() {
        Result r = run(List.of("train", "--help"));
        assertEquals(0, r.status());
        for (Setting.Group g : Setting.Group.values()) {
            assertTrue(r.out().contains(g.heading() + ":"), g.heading());
        }
        for (Setting s : TrainSettings.ALL) {
            assertTrue(r.out().contains("--" + s.key()), s.key());
        }
        assertTrue(r.out().contains("(default: 8)"), "experts' default");
        assertTrue(r.out().contains("--config=FILE"), r.out());
    }

    @Test
    void aConfigFileSetsOptionsAndAnUnknownKeyIsOneLine() throws Exception {
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, "experts: 0\nsteps: 2\n");
        Result dense = run(tiny("--config", yaml.toString(), "--samples", "0"));
        assertEquals(0, dense.status(), dense.err());
        assertTrue(dense.out().contains("dense MLP of width 64"), dense.out());
        assertTrue(dense.out().contains("step 2/2"), dense.out());
        assertFalse(dense.out().contains("load CV"), "no routing without experts");

        Files.writeString(yaml, "experts: 4\nlearning-rate: 0.1\n");
        Result bad = run(tiny("--config", yaml.toString()));
        assertEquals(2, bad.status());
        assertEquals("moe4j: error: " + yaml + ": unknown key 'learning-rate' (moe4j train --help lists the options)\n",
                bad.err());
        Result value = run(tiny("--top-k", "9"));
        assertEquals(2, value.status());
        assertTrue(value.err().startsWith("moe4j: error: --top-k 9 is more than the 4 experts"), value.err());
        assertEquals(1, value.err().lines().count());
    }

    @Test
    void aTimeBudgetWithoutAStepCountFixesTheScheduleOnceItKnowsTheSpeed() {
        Result r = run(tiny("--steps", "0", "--time", "2s", "--warmup", "2", "--samples", "0"));
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("training for the time budget"), r.out());
        assertTrue(r.out().contains("the time budget allows about"), r.out());
        assertTrue(r.out().contains("trained "), r.out());
    }

    @Test
    void preTokenisedJsonlIsTakenInOrderWithoutATokenizer() throws Exception {
        Path jsonl = dir.resolve("ids.jsonl");
        var lines = new StringBuilder();
        for (int doc = 0; doc < 12; doc++) {
            var ids = new ArrayList<String>();
            for (int i = 0; i < 40; i++) {
                ids.add(Integer.toString((doc * 7 + i * 3) % 50));
            }
            lines.append('[').append(String.join(", ", ids)).append("]\n");
        }
        Files.writeString(jsonl, lines);
        Result r = run(List.of("train", "--tiny", "--data", jsonl.toString(), "--vocab", "64", "--shuffle", "false",
                "--out", dir.resolve("ids").toString(), "--cache", cache.toString()));
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("(pre-tokenised)"), r.out());
        assertFalse(r.out().contains("--- sample ---"), "no tokenizer, no text samples");
        assertEquals(64, Json.read(dir.resolve("ids").resolve("config.json")).get("vocab_size").asInt());
    }

    @Test
    void moe4jsOwnOptionsSaveInMoe4jsFormatThatLoads() throws Exception {
        Result r = run(tiny("--router", "expert-choice", "--capacity-factor", "1", "--samples", "1"));
        assertEquals(0, r.status(), r.err());
        Path run = dir.resolve("run");
        assertEquals("moe4j", Json.read(run.resolve("config.json")).get("model_type").asText());
        try (TransformerModel model = ModelLoader.load(run)) {
            assertEquals("EXPERT_CHOICE", model.config().moe().orElseThrow().router().name());
        }
    }

    @Test
    void fineTuningAHuggingFaceCheckpointSavesInItsFamilysFormat() throws Exception {
        Path init = resource("fixtures/mixtral");
        Result r = run(List.of("train", "--init", init.toString(), "--data", data.toString(), "--cache",
                cache.toString(), "--out", dir.resolve("tuned").toString(), "--steps", "3", "--context", "16",
                "--batch", "2", "--samples", "1", "--sample-tokens", "8", "--eval-batches", "2"));
        assertEquals(0, r.status(), r.err());
        assertFalse(r.out().contains("training a byte-level BPE"), "the checkpoint's tokenizer is used");
        Path tuned = dir.resolve("tuned");
        JsonNode config = Json.read(tuned.resolve("config.json"));
        assertEquals("mixtral", config.get("model_type").asText());
        assertEquals(Files.readString(init.resolve("tokenizer.json")), Files.readString(tuned.resolve("tokenizer.json")));
        try (TransformerModel model = ModelLoader.load(tuned)) {
            assertEquals(512, model.config().vocabSize());
        }
    }
}
