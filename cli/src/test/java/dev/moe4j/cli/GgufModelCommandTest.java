package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.DType;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.gguf.GgufConverter;
import dev.moe4j.model.gguf.GgufFileType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/** The commands that take {@code --model} run a GGUF file as they run the folder it was converted from. */
class GgufModelCommandTest {
    @TempDir
    Path dir;

    private static Cli.Result run(String... args) {
        return Cli.run(ModelFolder.Opener.CHECKPOINT, args);
    }

    @Test
    void generateFromAGgufFileGivesTheFolderModelsTokensAndText() {
        Path folder = Fixtures.model("mixtral", dir);
        Path gguf = dir.resolve("mixtral.gguf");
        GgufConverter.convert(folder, gguf, Optional.of(GgufFileType.F32));
        JsonNode[] runs = new JsonNode[2];
        Path[] models = {folder, gguf};
        for (int i = 0; i < 2; i++) {
            var r = run("generate", "--device", "cpu", "--model", models[i].toString(), "--prompt",
                    "Mixture of experts", "--max-tokens", "12", "--json");
            assertEquals(0, r.status(), r.err());
            runs[i] = Json.parse(r.out(), "stdout");
        }
        assertEquals(runs[0].get("prompt_ids"), runs[1].get("prompt_ids"), "the GGUF's tokenizer");
        assertEquals(12, runs[1].get("output_ids").size());
        assertEquals(runs[0].get("output_ids"), runs[1].get("output_ids"));
        assertEquals(runs[0].get("text"), runs[1].get("text"));

        var score = run("score", "--device", "cpu", "--model", gguf.toString(), "--text", "Mixture of experts");
        assertEquals(0, score.status(), score.err());
        var inspect = run("inspect", gguf.toString());
        assertEquals(0, inspect.status(), inspect.err());
        assertTrue(inspect.out().contains("mixtral (MixtralForCausalLM)"), inspect.out());
        assertTrue(inspect.out().contains("mixtral.gguf"), inspect.out());
    }

    @Test
    void aBadGgufFileIsOneLineAndExitStatus2() throws IOException {
        Path notGguf = dir.resolve("model.gguf");
        Files.write(notGguf, new byte[] {'G', 'G', 'M', 'L', 1, 2, 3});
        Path truncated = dir.resolve("truncated.gguf");
        GgufConverter.convert(Fixtures.model("qwen3-moe", dir), dir.resolve("full.gguf"), Optional.empty());
        byte[] full = Files.readAllBytes(dir.resolve("full.gguf"));
        Files.write(truncated, java.util.Arrays.copyOf(full, 200));
        for (String command : new String[] {"generate", "score", "chat", "inspect"}) {
            for (Path bad : new Path[] {notGguf, truncated}) {
                String[] args = switch (command) {
                    case "generate" -> new String[] {command, "--device", "cpu", "--model", bad.toString(),
                            "--prompt", "x"};
                    case "score" -> new String[] {command, "--device", "cpu", "--model", bad.toString(), "--text", "x"};
                    case "chat" -> new String[] {command, "--device", "cpu", "--model", bad.toString()};
                    default -> new String[] {command, bad.toString()};
                };
                var r = run(args);
                assertEquals(2, r.status(), command + " " + bad + ": " + r.err());
                assertEquals(1, r.err().lines().count(), r.err());
                assertTrue(r.err().startsWith("moe4j: error: " + bad + ": "), r.err());
                assertEquals("", r.out());
            }
        }
    }
}
