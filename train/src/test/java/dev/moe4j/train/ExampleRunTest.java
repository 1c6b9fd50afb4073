package dev.moe4j.train;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code moe4j train} on example data: resumed exactly, cut to --max-length with a count, packed on request, chat. */
class ExampleRunTest {
    @TempDir
    Path dir;

    /** 30 examples of 5 to 24 ids under 320, the first three of each labelled -100. */
    private Path idExamples() throws Exception {
        var random = new SplittableRandom(3);
        var lines = new StringBuilder();
        for (int e = 0; e < 30; e++) {
            int n = 5 + random.nextInt(20);
            var ids = new ArrayList<String>();
            var labels = new ArrayList<String>();
            for (int i = 0; i < n; i++) {
                String id = Integer.toString(1 + random.nextInt(300));
                ids.add(id);
                labels.add(i < 3 ? "-100" : id);
            }
            lines.append("{\"input_ids\": [").append(String.join(", ", ids)).append("], \"labels\": [")
                    .append(String.join(", ", labels)).append("]}\n");
        }
        Path file = dir.resolve("ids.jsonl");
        Files.writeString(file, lines);
        return file;
    }

    private Map<String, String> tiny(Path data, Path out) {
        return new HashMap<>(Map.of("tiny", "true", "data", data.toString(), "cache", dir.resolve("cache").toString(),
                "out", out.toString(), "steps", "6", "eval-every", "3", "samples", "0", "batch", "3",
                "accumulate", "2"));
    }

    private static final class Crash extends RuntimeException {
    }

    @Test
    void aResumedRunOnExamplesEqualsAnUninterruptedOneBitForBit() throws Exception {
        Path data = idExamples(), straight = dir.resolve("straight"), resumed = dir.resolve("resumed");
        TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), tiny(data, straight))), new TrainingRun.Listener() { });
        assertThrows(Crash.class, () -> TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), tiny(data, resumed))),
                new TrainingRun.Listener() {
                    @Override
                    public void step(StepMetrics m, TrainingRun.Progress p) {
                        if (m.step() == 4) {
                            throw new Crash();
                        }
                    }
                }));
        var again = TrainSettings.resumed(RunCheckpoint.settings(resumed), Map.of("resume", "true"), "test");
        TrainingRun.run(TrainConfig.parse(again), new TrainingRun.Listener() { });
        assertEquals(ResumeTest.losses(straight), ResumeTest.losses(resumed));
        assertTrue(ResumeTest.losses(straight).stream().anyMatch(l -> l.startsWith("eval 3 ")), "validation examples evaluated");
        assertArrayEquals(Files.readAllBytes(straight.resolve("model.safetensors")),
                Files.readAllBytes(resumed.resolve("model.safetensors")));
    }

    @Test
    void longExamplesAreCutToMaxLengthWithACountAndPackingCutsWindows() throws Exception {
        Path data = idExamples();
        var messages = new ArrayList<String>();
        var options = tiny(data, dir.resolve("cut"));
        options.putAll(Map.of("max-length", "8", "steps", "2", "eval-every", "0"));
        TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), options)), new TrainingRun.Listener() {
            @Override
            public void message(String text) {
                messages.add(text);
            }
        });
        assertTrue(messages.stream().anyMatch(m -> m.matches("\\d+ of 30 examples are longer than 8 tokens "
                + "\\(--max-length\\) and were cut to it")), messages.toString());

        var packed = tiny(data, dir.resolve("packed"));
        packed.putAll(Map.of("packing", "true", "context", "16", "steps", "2"));
        var start = new ArrayList<TrainingRun.Start>();
        TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), packed)), new TrainingRun.Listener() {
            @Override
            public void started(TrainingRun.Start s) {
                start.add(s);
            }
        });
        assertEquals(3 * 16 * 2, start.getFirst().tokensPerStep(), "windows of --context");
    }

    /**
     * A new model trained on conversations renders them with moe4j's own template, which its checkpoint carries, so
     * that moe4j chat talks to it as it was trained; --chat-template replaces it in both.
     */
    @Test
    void conversationsTrainANewModelWithTheTemplateItsCheckpointCarries() throws Exception {
        Path data = dir.resolve("chat.jsonl");
        Files.writeString(data, """
                {"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hello, friend."}]}
                {"messages": [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple."}]}
                {"messages": [{"role": "user", "content": "Thank you."}, {"role": "assistant", "content": "You are welcome."}]}
                """);
        Path tokenizer = ExampleTrainingTest.fixture("qwen2-moe").resolve("tokenizer.json");
        var options = tiny(data, dir.resolve("chat"));
        options.putAll(Map.of("tokenizer", tokenizer.toString(), "steps", "2", "eval-every", "0", "samples", "1",
                "sample-tokens", "4", "valid-fraction", "0.34"));
        var summary = TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), options)), new TrainingRun.Listener() { });
        assertEquals("User:\nThank you.<|endoftext|>\n\nAssistant:\n", summary.prompt(), "the validation example's prompt");
        assertEquals(RunCheckpoint.CHAT_TEMPLATE, ChatTemplate.load(dir.resolve("chat/tokenizer_config.json")).text());

        Path template = dir.resolve("plain.jinja");
        Files.writeString(template, "{% for m in messages %}{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                + "{% if add_generation_prompt %}assistant> {% endif %}");
        options.putAll(Map.of("chat-template", template.toString(), "out", dir.resolve("chat2").toString()));
        summary = TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), options)), new TrainingRun.Listener() { });
        // the reply's first token, " You", holds the space the generation prompt ends with
        assertEquals("user> Thank you.\nassistant>", summary.prompt());
        assertEquals(Files.readString(template), ChatTemplate.load(dir.resolve("chat2/tokenizer_config.json")).text());

        options.putAll(Map.of("chat-template", dir.resolve("missing.jinja").toString(), "out", dir.resolve("chat3").toString()));
        var e = assertThrows(BadInputException.class,
                () -> TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), options)), new TrainingRun.Listener() { }));
        assertTrue(e.getMessage().contains("missing.jinja") && e.getMessage().contains("no such file"), e.getMessage());
        List.of(e.getMessage()).forEach(m -> assertTrue(m.indexOf('\n') < 0));
    }
}
