package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code moe4j prune} on the Mixtral fixture (8 experts, top-2): the pruned folder is a model the other commands run,
 * it generates what the original generates with the experts pruning.json names masked, and mistakes are one line.
 */
class PruneCommandTest {
    @TempDir
    Path dir;

    private static Cli.Result run(String... args) {
        return Cli.run(ModelFolder.Opener.CHECKPOINT, args);
    }

    private Path calibration() throws IOException {
        return Files.writeString(dir.resolve("calibration.txt"), "To be, or not to be, that is the question: whether"
                + " 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune.");
    }

    @Test
    void thePrunedFolderGeneratesWhatTheMaskedOriginalDoes() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        Path out = dir.resolve("pruned");
        var r = run("prune", model.toString(), "--keep", "0.75", "--calibration", calibration().toString(), "--out",
                out.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("keeping 6 of 8 experts per MoE layer by saliency"), r.out());
        JsonNode report = Json.read(out.resolve("pruning.json"));
        assertEquals(6, report.get("experts_after").asInt());
        assertEquals(6, report.get("layers").get(0).get("kept").size());
        JsonNode config = Json.read(out.resolve("config.json"));
        assertEquals(6, config.get("num_local_experts").asInt());
        assertEquals(2, config.get("num_experts_per_tok").asInt());
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
        String mask = report.get("mask_equivalent").asText();
        assertTrue(mask.startsWith("mask=0:"), mask);
        var pruned = run("generate", "--model", out.toString(), "--prompt-ids", "1,20,30,40", "--max-tokens", "8",
                "--json");
        var masked = run("generate", "--model", model.toString(), "--prompt-ids", "1,20,30,40", "--max-tokens", "8",
                "--json", "--expert-mask", mask.substring("mask=".length()));
        assertEquals(0, masked.status(), masked.err());
        assertEquals(Json.parse(masked.out(), "masked").get("output_ids"), Json.parse(pruned.out(), "pruned")
                .get("output_ids"));
    }

    @Test
    void mistakesAreOneLine() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        Path text = calibration();
        var r = run("prune", model.toString(), "--keep", "0", "--calibration", text.toString(), "--out",
                dir.resolve("a").toString());
        assertEquals("moe4j: error: --keep 0: expected a fraction in (0, 1) or a whole number of experts", r.err().strip());
        r = run("prune", model.toString(), "--keep", "6", "--calibration", text.toString(), "--out", model.toString());
        assertEquals("moe4j: error: --out " + model + ": exists and is not an empty folder; choose another",
                r.err().strip());
        r = run("prune", model.toString(), "--keep", "6", "--calibration", text.toString(), "--out",
                dir.resolve("b").toString(), "--by", "luck");
        assertEquals("moe4j: error: --by 'luck': expected saliency, use or contribution", r.err().strip());
        assertEquals(2, r.status());
    }
}
