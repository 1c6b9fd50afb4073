package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A two-variant sweep of tiny runs, end to end: folders, records, results.json and re-runs. */
class ExperimentRunnerTest {
    @TempDir
    Path dir;

    private static final Experiment TINY = new Experiment("tiny", "a tiny sweep", "nothing in particular",
            Map.ofEntries(Map.entry("data", "text"), Map.entry("layers", "1"), Map.entry("hidden", "16"),
                    Map.entry("heads", "2"), Map.entry("experts", "4"), Map.entry("top-k", "2"),
                    Map.entry("expert-width", "16"), Map.entry("vocab", "280"), Map.entry("context", "16"),
                    Map.entry("batch", "2"), Map.entry("steps", "6"), Map.entry("warmup", "1"),
                    Map.entry("eval-every", "3"), Map.entry("eval-batches", "2"), Map.entry("save-every", "1000"),
                    Map.entry("samples", "0")),
            Map.of("steps", "4"),
            b -> List.of(new Variant("top2", "top-2", Map.of(), "two of four experts"),
                    new Variant("dense", "dense", Map.of("experts", "0"), "a dense MLP")),
            false);

    @BeforeEach
    void corpus() throws Exception {
        var random = new SplittableRandom(5);
        String[] words = {"to", "be", "or", "not", "that", "is", "the", "question"};
        var text = new StringBuilder();
        for (int i = 0; i < 1500; i++) {
            text.append(words[random.nextInt(words.length)]).append(i % 7 == 6 ? "\n" : " ");
        }
        Files.createDirectories(dir.resolve("root/text"));
        Files.writeString(dir.resolve("root/text/hamlet.txt"), text);
    }

    private ExperimentRunner.Options options(boolean force) {
        return new ExperimentRunner.Options(dir.resolve("runs"), dir.resolve("root"), false, force, 2,
                Optional.of(dir.resolve("cache")), 1);
    }

    private static final class Recorder implements ExperimentRunner.Listener {
        final List<String> started = new ArrayList<>();
        final List<String> skipped = new ArrayList<>();

        @Override
        public void runStarting(String run, int index, int total, String description) {
            started.add(run);
        }

        @Override
        public void runFinished(String run, JsonNode record, boolean wasSkipped) {
            if (wasSkipped) {
                skipped.add(run);
            }
        }
    }

    @Test
    void everyVariantRunsWithEverySeedAndResultsSummariseThem() {
        var recorder = new Recorder();
        JsonNode results = ExperimentRunner.run(TINY, options(false), recorder).orElseThrow();
        assertEquals(List.of("top2-s1", "dense-s1", "top2-s2", "dense-s2"), recorder.started);
        Path folder = dir.resolve("runs/tiny");
        assertEquals(Json.compact(results), Json.compact(Json.read(folder.resolve(ExperimentRunner.RESULTS_FILE))));
        for (String run : recorder.started) {
            assertTrue(RunCheckpoint.exists(folder.resolve(run)), run);
            assertTrue(Files.isRegularFile(folder.resolve(run).resolve(ExperimentRunner.RUN_FILE)));
            assertFalse(Files.exists(folder.resolve(run).resolve(RunCheckpoint.OPTIMIZER)), "optimizer state removed");
        }
        JsonNode top2 = results.path("variants").get(0);
        assertEquals("top2", top2.path("name").asText());
        assertEquals(2, top2.path("summary").path("final_val_loss").path("n").asInt());
        JsonNode seeds = top2.path("summary").path("final_val_loss").path("values");
        assertEquals(top2.path("runs").get(0).path("final_val_loss").asDouble(), seeds.get(0).asDouble(), 0);
        assertTrue(seeds.get(0).asDouble() != seeds.get(1).asDouble(), "seeds differ");
        double mean = (seeds.get(0).asDouble() + seeds.get(1).asDouble()) / 2;
        assertEquals(mean, top2.path("summary").path("final_val_loss").path("mean").asDouble(), 1e-5);
        JsonNode run = top2.path("runs").get(0);
        assertEquals("finished", run.path("status").asText());
        assertEquals(6, run.path("steps").asInt());
        assertEquals(6L * 2 * 16, run.path("tokens").asLong());
        assertEquals(List.of(3L, 6L), steps(run.path("curves").path("eval")));
        assertEquals(4, run.path("routing").path("layers").get(0).path("load_share").size());
        assertEquals(4, run.path("load_over_training").path("share").get(0).get(0).size());
        assertTrue(run.path("analysis").path("causal").path("causal_loss").isNumber());
        // The dense baseline has no routing to report.
        JsonNode dense = results.path("variants").get(1);
        assertEquals(0, dense.path("summary").path("load_cv").path("n").asInt());
        assertEquals(2, dense.path("mean_eval_curve").size());
    }

    @Test
    void runsAlreadyDoneAreReusedUnlessForced() throws Exception {
        ExperimentRunner.run(TINY, options(false), new Recorder());
        Path metrics = dir.resolve("runs/tiny/top2-s1").resolve(RunCheckpoint.METRICS);
        var written = Files.getLastModifiedTime(metrics);
        var again = new Recorder();
        ExperimentRunner.run(TINY, options(false), again);
        assertEquals(List.of(), again.started);
        assertEquals(4, again.skipped.size());
        assertEquals(written, Files.getLastModifiedTime(metrics));
        var forced = new Recorder();
        ExperimentRunner.run(TINY, options(true), forced);
        assertEquals(4, forced.started.size());
    }

    @Test
    void processesSplittingTheVariantsGatherResultsOnceAllAreDone() {
        var base = options(false);
        var first = new Recorder();
        var partial = ExperimentRunner.run(TINY, new ExperimentRunner.Options(base.runs(), base.dataRoot(), false,
                false, 2, base.cache(), 1, Set.of("dense")), first);
        assertEquals(List.of("dense-s1", "dense-s2"), first.started);
        assertTrue(partial.isEmpty(), "top2 is missing, so nothing is gathered");
        assertFalse(Files.exists(dir.resolve("runs/tiny").resolve(ExperimentRunner.RESULTS_FILE)));

        var second = new Recorder();
        var results = ExperimentRunner.run(TINY, new ExperimentRunner.Options(base.runs(), base.dataRoot(), false,
                false, 2, base.cache(), 1, Set.of("top2")), second);
        assertEquals(List.of("top2-s1", "top2-s2"), second.started);
        assertEquals(2, results.orElseThrow().path("variants").size());
        assertEquals(2, results.get().path("variants").get(1).path("summary").path("final_val_loss").path("n").asInt());
    }

    @Test
    void partialResultsGatherTheVariantsThatAreDoneAndNameTheOthers() {
        var base = options(false);
        var results = ExperimentRunner.run(TINY, new ExperimentRunner.Options(base.runs(), base.dataRoot(), false,
                false, 2, base.cache(), 1, Set.of("dense"), true), new Recorder()).orElseThrow();
        assertEquals(1, results.path("variants").size());
        assertEquals("dense", results.path("variants").get(0).path("name").asText());
        assertTrue(results.path("partial").asBoolean());
        assertEquals("top2", results.path("left_out").get(0).asText());
    }

    @Test
    void anUnknownVariantIsNamedInTheError() {
        var base = options(false);
        var e = assertThrows(BadInputException.class, () -> ExperimentRunner.run(TINY, new ExperimentRunner.Options(
                base.runs(), base.dataRoot(), false, false, 2, base.cache(), 1, Set.of("top3")), new Recorder()));
        assertTrue(e.getMessage().contains("top3") && e.getMessage().contains("top2, dense"), e.getMessage());
    }

    private static List<Long> steps(JsonNode curve) {
        var out = new ArrayList<Long>();
        curve.forEach(p -> out.add(p.get(0).asLong()));
        return out;
    }
}
