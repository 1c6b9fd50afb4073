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
        var r = convert("--to", "gguf", "--model", model.toString(), "--out", out.toString(), "--type", "bf16");
        assertEquals(0, r.status(), r.err());
        assertEquals("", r.out());
        assertTrue(r.err().startsWith("moe4j: wrote " + out + ": llama, 23 tensors,"), r.err());
        assertTrue(r.err().contains("(bf16); vocabulary: tokenizer.json as a llama vocabulary"), r.err());
        try (var gguf = GgufReader.open(out)) {
            assertEquals("llama", gguf.metadata().get("general.architecture").orElseThrow().stringValue());
            assertEquals(dev.moe4j.core.DType.BF16, gguf.tensor("blk.0.ffn_up_exps.weight").dtype());
        }
    }

    @Test
    void aGptOssFolderIsConvertedWithANoteOnLlamaCppsYarn() {
        Path model = Fixtures.model("gpt-oss", dir);
        Path out = dir.resolve("gpt-oss.gguf");
        var r = convert("--to", "gguf", "--model", model.toString(), "--out", out.toString(), "--type", "f16");
        assertEquals(0, r.status(), r.err());
        var lines = r.err().lines().toList();
        assertEquals(2, lines.size(), r.err());
        assertTrue(lines.get(0).startsWith("moe4j: wrote " + out + ": gpt-oss, "), r.err());
        assertTrue(lines.get(1).startsWith("moe4j: note: llama.cpp rounds YaRN's correction range"), r.err());
    }

    @Test
    void aQuantisedTypeIsWrittenAndQuantizeRewritesItInAnother() {
        Path model = Fixtures.model("qwen3-moe", dir);
        Path q8 = dir.resolve("q8.gguf");
        var r = convert("--to", "gguf", "--model", model.toString(), "--out", q8.toString(), "--type", "Q8_0");
        assertEquals(0, r.status(), r.err());
        assertTrue(r.err().contains("(q8_0)"), r.err());
        Path q4 = dir.resolve("q4.gguf");
        var q = Cli.run(new Cli.ToyModels(), "quantize", q8.toString(), q4.toString(), "q4_0");
        assertEquals(0, q.status(), q.err());
        assertEquals("", q.out());
        assertTrue(q.err().startsWith("moe4j: wrote " + q4 + ": "), q.err());
        assertTrue(q.err().contains("(q4_0: F32 "), q.err());
        try (var gguf = GgufReader.open(q4)) {
            assertEquals(2, gguf.metadata().get("general.file_type").orElseThrow().longValue());
            assertEquals(dev.moe4j.core.DType.Q4_0, gguf.tensor("blk.0.attn_q.weight").dtype());
            assertEquals(dev.moe4j.core.DType.Q8_0, gguf.tensor("output.weight").dtype(),
                    "rows of 64: Q6_K's blocks do not fit, so the output falls back to Q8_0");
            assertEquals(dev.moe4j.core.DType.F16, gguf.tensor("blk.0.ffn_down_exps.weight").dtype(),
                    "rows of 48 are not blocks of 32");
            assertEquals(dev.moe4j.core.DType.F32, gguf.tensor("blk.0.attn_norm.weight").dtype());
        }
        String[][] cases = {
                {"quantize", q8.toString(), dir.resolve("x.gguf").toString(), "q2_k"},
                {"quantize", dir.resolve("missing.gguf").toString(), dir.resolve("x.gguf").toString(), "q8_0"},
                {"quantize", q8.toString(), dir.toString(), "q8_0"},
        };
        String[] expected = {"TYPE: expected one of f32, f16", "missing.gguf: no such file", "is a folder"};
        for (int i = 0; i < cases.length; i++) {
            var e = Cli.run(new Cli.ToyModels(), cases[i]);
            assertEquals(2, e.status(), e.err());
            assertTrue(e.err().startsWith("moe4j: error: ") && e.err().contains(expected[i]), e.err());
            assertEquals(1, e.err().lines().count(), e.err());
            assertFalse(Files.exists(dir.resolve("x.gguf")));
        }
    }

    @Test
    void mistakesAreOneLineAndWriteNothing() {
        Path model = Fixtures.model("olmoe", dir);
        Path out = dir.resolve("x.gguf");
        String[][] cases = {
                {"--to", "onnx", "--model", model.toString(), "--out", out.toString()},
                {"--to", "gguf", "--model", model.toString(), "--out", out.toString(), "--type", "q3_k"},
                {"--to", "gguf", "--model", dir.resolve("missing").toString(), "--out", out.toString()},
                {"--to", "gguf", "--model", model.toString(), "--out", out.toString()},
        };
        String[] expected = {"--to: expected gguf, got 'onnx'", "--type: expected one of f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, mxfp4_moe, got 'q3_k'",
                "missing: not a model folder", "the model has grouped-query attention, which llama.cpp's 'olmoe'"};
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
