package dev.moe4j.cli.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.Main;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.checkpoint.RunLock;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

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

    @Test
    void loraFineTuningSavesAPeftAdapterThatGenerateAppliesAndResumeContinues() throws Exception {
        Path init = resource("fixtures/mixtral");
        Path tuned = dir.resolve("lora");
        List<String> args = List.of("train", "--init", init.toString(), "--data", data.toString(), "--cache",
                cache.toString(), "--out", tuned.toString(), "--steps", "2", "--context", "16", "--batch", "2",
                "--samples", "1", "--sample-tokens", "4", "--eval-batches", "1", "--lr", "1e-2", "--lora-rank", "4",
                "--lora-targets", "q_proj,v_proj,experts,router", "--mmap");
        Result r = run(args);
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("LoRA rank 4, alpha 16 on q_proj, v_proj, experts, router"), r.out());
        assertTrue(Files.isRegularFile(tuned.resolve("adapter_config.json")));
        assertFalse(Files.exists(tuned.resolve("model.safetensors")), "the adapters alone, not the model");
        JsonNode adapter = Json.read(tuned.resolve("adapter_config.json"));
        assertEquals(4, adapter.get("r").asInt());
        assertEquals(init.toString(), adapter.get("base_model_name_or_path").asText());
        try (TransformerModel base = ModelLoader.load(init);
             TransformerModel adapted = ModelLoader.load(init, dev.moe4j.core.backend.CpuBackend.INSTANCE,
                     dev.moe4j.model.LoadOptions.DEFAULT.withAdapter(tuned))) {
            int[] tokens = {1, 2, 3, 4, 5, 6};
            var g = dev.moe4j.core.autograd.Graph.inference();
            float[] a = base.transformer().forward(g, tokens, 1, null).logits().value().toFloatArray();
            float[] b = adapted.transformer().forward(g, tokens, 1, null).logits().value().toFloatArray();
            assertFalse(java.util.Arrays.equals(a, b), "two steps moved the adapters away from b = 0");
        }
        Result generated = run(List.of("generate", "--model", init.toString(), "--adapter", tuned.toString(),
                "--prompt", "the king", "--max-tokens", "3", "--greedy"));
        assertEquals(0, generated.status(), generated.err());

        var resumed = new ArrayList<>(args);
        resumed.set(resumed.indexOf("--steps") + 1, "3");
        resumed.add("--resume");
        Result more = run(resumed);
        assertEquals(0, more.status(), more.err());
        assertEquals(3, Json.read(tuned.resolve("trainer_state.json")).get("step").asInt());
    }

    @Test
    void loraOptionsThatCannotWorkAreRefusedInOneLine() {
        assertOneLineError(run(quick("--lora-rank", "4")), "--lora-rank needs --init");
        Path init = resource("fixtures/mixtral");
        Result unknown = run(List.of("train", "--init", init.toString(), "--data", data.toString(), "--cache",
                cache.toString(), "--out", dir.resolve("x").toString(), "--lora-rank", "4", "--lora-targets",
                "q_proj,wq"));
        assertOneLineError(unknown, "--lora-targets: unknown target 'wq'");
        Result absent = run(List.of("train", "--init", init.toString(), "--data", data.toString(), "--cache",
                cache.toString(), "--out", dir.resolve("y").toString(), "--lora-rank", "4", "--lora-targets",
                "shared_experts"));
        assertOneLineError(absent, "--lora-targets: this mixtral model has no 'shared_experts'");
    }

    /** Runs that finish in a second: one step, no samples, one evaluation batch. */
    private List<String> quick(String... more) {
        var args = new ArrayList<>(tiny("--steps", "1", "--samples", "0", "--eval-batches", "1"));
        args.addAll(List.of(more));
        return args;
    }

    private static void assertOneLineError(Result r, String start) {
        assertEquals(Main.EXIT_BAD_INPUT, r.status(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: " + start), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    @Test
    void anUnknownOptionAfterASwitchIsRefusedRatherThanTakenAsTheSwitchsValue() {
        for (String option : List.of("--tiny", "--shared-gate", "--shuffle", "--resume")) {
            // Were --foo=1 the switch's value, these options would train and save a model.
            Result r = run(quick(option, "--foo=1"));
            assertOneLineError(r, "Unknown option: '--foo=1'");
            assertFalse(Files.exists(dir.resolve("run")), option + ": nothing trained or saved");
        }
        Result word = run(quick("--tiny", "maybe"));
        assertOneLineError(word, "Unmatched argument at index ");
        assertTrue(word.err().contains(": 'maybe'"), word.err());
        Result attached = run(quick("--shared-gate=--foo"));
        assertOneLineError(attached, "Invalid value for option '--shared-gate': '--foo' is not a boolean");
        assertFalse(Files.exists(dir.resolve("run")));
    }

    @Test
    void aSwitchSetToNeitherTrueNorFalseInAConfigFileIsOneLine() throws Exception {
        Path yaml = dir.resolve("run.yaml");
        for (String line : List.of("tiny: '--foo=1'", "shared-gate: sometimes")) {
            Files.writeString(yaml, line + "\n");
            Result r = run(List.of("train", "--config", yaml.toString(), "--data", data.toString(), "--cache",
                    cache.toString(), "--out", dir.resolve("run").toString(), "--steps", "1"));
            String key = line.substring(0, line.indexOf(':'));
            assertOneLineError(r, "--" + key + ": expected true or false, got '" + line.substring(key.length() + 2)
                    .replace("'", "") + "'");
            assertFalse(Files.exists(dir.resolve("run")), "nothing trained or saved");
        }
    }

    @Test
    void trainingIntoASavedRunIsRefusedUnlessResumedOrOverwritten() throws Exception {
        assertEquals(0, run(quick()).status());
        Path run = dir.resolve("run");
        byte[] weights = Files.readAllBytes(run.resolve("model.safetensors"));

        Result again = run(quick("--seed", "2"));
        assertOneLineError(again, run + " already holds a saved run: continue it with --resume, train under "
                + "another --name (or --out), or replace it with --overwrite");
        assertEquals(1, again.err().lines().count(), again.err());
        assertArrayEquals(weights, Files.readAllBytes(run.resolve("model.safetensors")), "the saved run is kept");

        Result both = run(quick("--resume", "--overwrite"));
        assertOneLineError(both, "--resume continues the saved run and --overwrite replaces it");

        Result replaced = run(quick("--seed", "2", "--overwrite"));
        assertEquals(0, replaced.status(), replaced.err());
        assertTrue(replaced.out().contains("replacing the run saved in " + run), replaced.out());
        assertFalse(java.util.Arrays.equals(weights, Files.readAllBytes(run.resolve("model.safetensors"))));
        assertEquals("2", RunCheckpoint.settings(run).get("seed"));
    }

    @Test
    void aSecondTrainOnAFolderThatAnotherProcessHoldsIsOneLineNamingIt() throws Exception {
        Path run = dir.resolve("run");
        // Another JVM takes the run's lock, as a moe4j train running there does, and holds it until its input ends.
        var holder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), HoldRunLock.class.getName(), run.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try (var reply = new java.io.BufferedReader(new java.io.InputStreamReader(holder.getInputStream()))) {
            assertEquals("held", reply.readLine());
            for (List<String> args : List.of(quick(), quick("--resume"))) {
                Result r = run(args);
                assertOneLineError(r, "--out " + run + " is in use by another moe4j train");
                assertTrue(r.err().contains(RunLock.file(run).toString()), r.err());
                assertFalse(r.out().contains("tokenising"), "refused before reading the data");
                assertFalse(Files.exists(run), "the other process's folder is left alone");
            }
        } finally {
            holder.getOutputStream().close();
            holder.waitFor();
        }
        Result after = run(quick());
        assertEquals(0, after.status(), "the lock goes with its process: " + after.err());
    }

    @Test
    void aSaveThatAKilledRunLeftUnfinishedIsRemovedAtTheNextStart() throws Exception {
        Path leftover = dir.resolve(".run.5f3a9c.tmp"), otherRuns = dir.resolve(".other.5f3a9c.tmp");
        for (Path p : List.of(leftover, otherRuns)) {
            Files.createDirectories(p);
            Files.write(p.resolve("model.safetensors"), new byte[4096]);
        }
        Result r = run(quick());
        assertEquals(0, r.status(), r.err());
        assertFalse(Files.exists(leftover), "the killed save's temporary folder is gone");
        assertTrue(r.out().contains("removed " + leftover), r.out());
        assertTrue(Files.exists(otherRuns), "another run's folder is not this run's to clean");
    }

    @Test
    void aNameThatIsNotOnePlainFolderIsRefusedBeforeAnythingIsWritten() {
        for (String name : List.of("../../escape", "a/b", "..", "/tmp/abs")) {
            Result r = run(List.of("train", "--tiny", "--name", name, "--data", data.toString(), "--cache",
                    cache.toString()));
            assertOneLineError(r, "--name: expected a plain name (one folder under runs/, without / or ..), got '"
                    + name + "'");
            assertFalse(Files.exists(cache), name + ": nothing read or written");
        }
    }

    @Test
    void anOutPathThroughAFileIsRefusedBeforeTheDataIsRead() throws Exception {
        Path file = dir.resolve("a-file");
        Files.writeString(file, "not a folder");
        Result r = run(List.of("train", "--tiny", "--data", data.toString(), "--cache", cache.toString(), "--out",
                file.resolve("run").toString()));
        assertOneLineError(r, "--out " + file.resolve("run") + ": cannot create its parent folder");
        assertFalse(Files.exists(cache), "refused before tokenising: " + r.out());
    }

    @Test
    void anOutFolderWithoutWritePermissionIsRefusedBeforeTheDataIsRead() {
        assumeFalse("root".equals(System.getProperty("user.name")), "permissions do not bind root");
        Path locked = dir.resolve("locked");
        assertTrue(locked.toFile().mkdir());
        locked.toFile().setWritable(false);
        try {
            Result denied = run(List.of("train", "--tiny", "--data", data.toString(), "--cache", cache.toString(),
                    "--out", locked.resolve("run").toString()));
            assertOneLineError(denied, "--out " + locked.resolve("run") + ": cannot write in " + locked);
            assertFalse(Files.exists(cache));
        } finally {
            locked.toFile().setWritable(true);
        }
    }

    @Test
    void aValidationSplitTooShortToEvaluateIsSaidOnceAndNoLossIsNaN() throws Exception {
        Path jsonl = dir.resolve("two.jsonl");
        var lines = new StringBuilder();
        for (int doc = 0; doc < 2; doc++) {
            var ids = new ArrayList<String>();
            for (int i = 0; i < 60; i++) {
                ids.add(Integer.toString((doc * 7 + i * 3) % 50));
            }
            lines.append('[').append(String.join(", ", ids)).append("]\n");
        }
        Files.writeString(jsonl, lines);
        Result r = run(List.of("train", "--tiny", "--data", jsonl.toString(), "--vocab", "64", "--out",
                dir.resolve("ids").toString(), "--cache", cache.toString()));
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("moe4j: no evaluation: the validation split holds 60 tokens, fewer than the 129 "
                + "of one batch (--batch 4 x --context 32 + 1)"), r.out());
        assertTrue(r.out().contains("train loss ") && r.out().contains(", no validation loss"), r.out());
        assertFalse(r.out().contains("NaN"), r.out());
    }

    @Test
    void helpGivesEachDefaultOnceAndNeverADefaultOfNone() {
        String help = run(List.of("train", "--help")).out();
        assertTrue(help.startsWith("Usage: moe4j train [-hV] [--config=FILE] [--precision=PRECISION] [--overwrite] "
                + "[--SETTING[=VALUE]]..."), "a synopsis like the other commands', not [OPTIONS]: " + help);
        String flat = help.replaceAll("\\s+", " ");
        // Options without a default value get no "(default: none)"; those whose sentence says what happens by
        // default get no "(default: ...)" after it.
        for (String key : List.of("init", "time", "tokenizer", "cache", "name", "out", "prompt")) {
            String entry = flat.substring(flat.indexOf("--" + key + "="));
            entry = entry.substring(0, entry.indexOf(" --", 3));
            int expected = key.equals("init") || key.equals("time") ? 0 : 1;
            assertEquals(expected, entry.split("default", -1).length - 1, entry);
        }
        assertTrue(flat.contains("Decoder layers (default: 4)."), "a default inside the sentence: " + help);
        assertTrue(flat.contains("--overwrite"), "the flag that replaces a saved run is listed");
    }
}
