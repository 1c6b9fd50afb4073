package dev.moe4j.io.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class GgufVocabularyTest {
    @TempDir
    Path dir;

    static Path tokenizer(String kind) {
        try {
            return Path.of(GgufVocabularyTest.class.getResource("/tokenizers/" + kind + "/tokenizer.json").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aSyntheticVocabularyHasOneDistinctPrintableTokenPerId() {
        var v = GgufVocabulary.synthetic(1000, Set.of(1, 2));
        assertEquals("gpt2", v.model());
        assertEquals(1000, v.tokens().size());
        assertEquals(1000, new HashSet<>(v.tokens()).size());
        assertTrue(v.tokens().stream().allMatch(t -> t.chars().allMatch(c -> c > ' ' && c <= '~')),
                "byte-level decoding knows printable ASCII as itself");
        assertEquals(GgufVocabulary.CONTROL, v.types().get(1));
        assertEquals(GgufVocabulary.NORMAL, v.types().get(3));
        assertEquals(List.of(), v.merges().orElseThrow(), "llama.cpp requires the merges key, even empty");
    }

    @Test
    void byteLevelBpeBecomesAGpt2VocabularyWithItsMergesPaddedToTheModelsSize() {
        Path file = tokenizer("bytelevel");
        JsonNode json = Json.read(file);
        var v = GgufVocabulary.fromTokenizerJson(file, 520);
        assertEquals("gpt2", v.model());
        assertEquals("gpt-2", v.pre().orElseThrow());
        assertEquals(520, v.tokens().size());
        for (var e : json.path("model").path("vocab").properties()) {
            assertEquals(e.getKey(), v.tokens().get(e.getValue().asInt()));
        }
        assertEquals(GgufVocabulary.CONTROL, v.types().get(0), "<|endoftext|> is a special added token");
        assertEquals(GgufVocabulary.NORMAL, v.types().get(3));
        assertEquals("[PAD515]", v.tokens().get(515));
        assertEquals(GgufVocabulary.UNUSED, v.types().get(515));
        JsonNode merges = json.path("model").path("merges");
        assertEquals(merges.size(), v.merges().orElseThrow().size());
        JsonNode first = merges.get(0);
        String expected = first.isArray() ? first.get(0).asText() + " " + first.get(1).asText() : first.asText();
        assertEquals(expected, v.merges().orElseThrow().getFirst());
        assertTrue(v.scores().isEmpty());
    }

    @Test
    void metaspaceBpeBecomesALlamaVocabularyScoredByMergeRank() {
        Path file = tokenizer("metaspace");
        JsonNode json = Json.read(file);
        var v = GgufVocabulary.fromTokenizerJson(file, 512);
        assertEquals("llama", v.model());
        assertTrue(v.addSpacePrefix().orElseThrow(), "the normalizer prepends ▁");
        assertEquals(0, v.unknownId().orElseThrow());
        assertEquals(GgufVocabulary.CONTROL, v.types().get(1));
        int byteToken = v.tokens().indexOf("<0x0A>");
        assertEquals(GgufVocabulary.BYTE, v.types().get(byteToken));
        float[] scores = v.scores().orElseThrow();
        JsonNode merges = json.path("model").path("merges");
        float previous = Float.POSITIVE_INFINITY;
        for (int r = 0; r < merges.size(); r++) {
            JsonNode m = merges.get(r);
            String merged = m.isArray() ? m.get(0).asText() + m.get(1).asText() : m.asText().replace(" ", "");
            float score = scores[v.tokens().indexOf(merged)];
            assertTrue(score <= previous, "merge " + r + " must not outrank an earlier one");
            previous = score;
        }
    }

    @Test
    void aTokenizerWithMoreIdsThanTheModelIsRefusedByName() throws IOException {
        var e = assertThrows(BadInputException.class, () -> GgufVocabulary.fromTokenizerJson(tokenizer("bytelevel"), 100));
        assertTrue(e.getMessage().contains("vocab_size is 100"), e.getMessage());
        Path wordLevel = dir.resolve("tokenizer.json");
        Files.writeString(wordLevel, "{\"model\": {\"type\": \"WordLevel\", \"vocab\": {}}}");
        e = assertThrows(BadInputException.class, () -> GgufVocabulary.fromTokenizerJson(wordLevel, 10));
        assertTrue(e.getMessage().startsWith(wordLevel + ": model: expected a BPE model"), e.getMessage());
    }
}
