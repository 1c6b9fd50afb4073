package dev.moe4j.cli;

import dev.moe4j.io.gguf.GgufReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Runs the real {@code moe4j convert} command line. */
class ConvertCommandTest {
    @TempDir
    Path dir;

    private static Cli.Result convert(String... args) {
        var all = new java.util.ArrayList<>(List.of("convert"));
        all.addAll(List.of(args));
        return Cli.run(new Cli.ToyModels(), all.toArray(String[]::new));
    }

    @Test
    void aMixtralFolderBecomesAGgufFileInTheRequestedType() {
        Path model = Fixtures.model("mixtral", dir);
        Path out = dir.resolve("out/mixtral.gguf");
        var r = convert("--to", "gguf", "--model", model.toString(), "--out", out.toString(), "--dtype", "bf16");
        assertEquals(0, r.status(), r.err());
        assertEquals("", r.out());
        assertTrue(r.err().startsWith("moe4j: wrote " + out + ": llama, 23 tensors,"), r.err());
        assertTrue(r.err().contains("(matrices BF16); vocabulary: tokenizer.json as a llama vocabulary"), r.err());
        try (var gguf = GgufReader.open(out)) {
            assertEquals("llama", gguf.metadata().get("general.architecture").orElseThrow().stringValue());
            assertEquals(dev.moe4j.core.DType.BF16, gguf.tensor("blk.0.ffn_up_exps.weight").dtype());
        }
    }

    @Test
    void mistakesAreOneLineAndWriteNothing() {
        Path model = Fixtures.model("olmoe", dir);
        Path out = dir.resolve("x.gguf");
        String[][] cases = {
                {"--to", "onnx", "--model", model.toString(), "--out", out.toString()},
                {"--to", "gguf", "--model", model.toString(), "--out", out.toString(), "--dtype", "q8_0"},
                {"--to", "gguf", "--model", dir.resolve("missing").toString(), "--out", out.toString()},
                {"--to", "gguf", "--model", Fixtures.model("deepseek-v3", dir).toString(), "--out", out.toString()},
        };
        String[] expected = {"--to: expected gguf, got 'onnx'", "--dtype: expected f32, bf16, f16 or same, got 'q8_0'",
                "missing: not a model folder", "model_type 'deepseek_v3' cannot be converted to GGUF yet"};
        for (int i = 0; i < cases.length; i++) {
            var r = convert(cases[i]);
            assertEquals(2, r.status(), r.err());
            assertTrue(r.err().startsWith("moe4j: error: "), r.err());
            assertTrue(r.err().contains(expected[i]), r.err());
            assertEquals(1, r.err().lines().count(), r.err());
            assertFalse(Files.exists(out));
        }
        var missing = convert("--to", "gguf", "--model", model.toString());
        assertEquals(2, missing.status());
        assertTrue(missing.err().contains("Missing required option: '--out=FILE'"), missing.err());
    }
}
