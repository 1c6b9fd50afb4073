package dev.moe4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A run that crashes and is resumed from its last checkpoint continues exactly as an uninterrupted run with the same
 * seed: the same loss at every step and the same weights and optimiser state at the end, bit for bit, including
 * router noise, aux-loss-free bias balancing, expert-choice thresholds and BF16 checkpoints (F32 master weights).
 */
class ResumeTest {
    @TempDir
    Path dir;

    /** Text with some structure: sentences of words drawn from a small vocabulary. */
    static Path corpus(Path dir) throws Exception {
        String[] words = {"the", "king", "queen", "shall", "speak", "night", "love", "my", "lord", "good", "and",
                "with", "thee", "thou", "art", "death", "come", "hence", "sweet", "fair"};
        var random = new SplittableRandom(11);
        var text = new StringBuilder();
        for (int line = 0; line < 400; line++) {
            text.append(line % 5 == 0 ? "KING:\n" : "");
            int n = 4 + random.nextInt(6);
            for (int w = 0; w < n; w++) {
                text.append(w == 0 ? "" : " ").append(words[random.nextInt(words.length)]);
            }
            text.append(".\n");
        }
        Path file = dir.resolve("text.txt");
        Files.writeString(file, text);
        return file;
    }

    static Map<String, String> tiny(Path data, Path cache, Path out) {
        var flags = new HashMap<String, String>(Map.of("tiny", "true", "data", data.toString(), "cache",
                cache.toString(), "out", out.toString(), "steps", "6", "eval-every", "3", "samples", "0",
                "context", "16", "batch", "3", "accumulate", "2"));
        return flags;
    }

    private static final class Crash extends RuntimeException {
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "noise=jitter,noise-amount=0.1,bias-balancing=0.01",
            "router=expert-choice,capacity-factor=1,dtype=bf16"})
    void aResumedRunEqualsAnUninterruptedOneBitForBit(String extra) throws Exception {
        Path data = corpus(dir), cache = dir.resolve("cache");
        Map<String, String> options = new HashMap<>();
        for (String kv : extra.isEmpty() ? new String[0] : extra.split(",")) {
            options.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
        }
        Path straight = dir.resolve("straight"), resumed = dir.resolve("resumed");
        var a = new HashMap<>(tiny(data, cache, straight));
        a.putAll(options);
        TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), a)), new TrainingRun.Listener() { });

        var b = new HashMap<>(tiny(data, cache, resumed));
        b.putAll(options);
        // Crash after step 4 was logged: the checkpoint of step 3 survives, the log has one step too many.
        assertThrows(Crash.class, () -> TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), b)),
                new TrainingRun.Listener() {
                    @Override
                    public void step(StepMetrics m, TrainingRun.Progress p) {
                        if (m.step() == 4) {
                            throw new Crash();
                        }
                    }
                }));
        assertEquals(3, RunCheckpoint.state(resumed).step());
        var saved = RunCheckpoint.settings(resumed);
        var again = TrainSettings.resumed(saved, Map.of("resume", "true"), "test");
        TrainingRun.run(TrainConfig.parse(again), new TrainingRun.Listener() { });

        assertEquals(losses(straight), losses(resumed));
        for (String file : List.of("model.safetensors", RunCheckpoint.OPTIMIZER)) {
            assertArrayEquals(Files.readAllBytes(straight.resolve(file)), Files.readAllBytes(resumed.resolve(file)), file);
        }
        try (TransformerModel model = ModelLoader.load(resumed)) {
            assertTrue(model.config().vocabSize() >= 257);
        }
    }

    @org.junit.jupiter.api.Test
    void aSaveThatFailsHalfWayLeavesThePreviousCheckpointIntact() throws Exception {
        Path data = corpus(dir), out = dir.resolve("run");
        var options = tiny(data, dir.resolve("cache"), out);
        options.put("steps", "2");
        TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), options)), new TrainingRun.Listener() { });
        byte[] weights = Files.readAllBytes(out.resolve("model.safetensors"));
        var model = ModelLoader.loadForTraining(out);
        var trainer = new Trainer(model, new dev.moe4j.train.optim.AdamW.Hyper(0.9, 0.95, 1e-8, 0.1),
                dev.moe4j.train.optim.AdamW.ALL, new Trainer.Settings(
                dev.moe4j.train.optim.LearningRateSchedule.constant(1e-3), 0, 1, 0, 1));
        trainer.parameters().values().forEach(p -> p.value().fill(0.5f)); // what a broken save would have written
        // The tokenizer to copy is gone: the save fails after the weights were written to its temporary folder.
        var extras = new RunCheckpoint.Extras(dir.resolve("missing-tokenizer.json"), null, Map.of(),
                Json.mapper().createObjectNode());
        assertThrows(RuntimeException.class, () -> RunCheckpoint.save(out, trainer, dev.moe4j.core.DType.F32, extras,
                new RunCheckpoint.State(9, 0, 0, 9, "mixtral", Double.NaN)));
        assertArrayEquals(weights, Files.readAllBytes(out.resolve("model.safetensors")));
        assertEquals(2, RunCheckpoint.state(out).step());
        try (var stream = Files.list(dir)) {
            assertTrue(stream.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary folder left");
        }
    }

    /** Every logged (step, loss) and (step, validation loss), in order. */
    static List<String> losses(Path run) throws Exception {
        return Files.readAllLines(run.resolve(RunCheckpoint.METRICS)).stream().map(line -> {
            JsonNode n = Json.parse(line, "metrics");
            return n.get("type").asText() + " " + n.get("step").asLong() + " "
                    + (n.has("loss") ? n.get("loss").asDouble() : n.get("val_loss").asDouble());
        }).toList();
    }
}
