package dev.moe4j.io.tokenizer;

import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A broken tokenizer.json gives one line that names the file and the field. */
class TokenizerBadInputTest {
    @TempDir
    Path dir;

    private String failure(String json) throws IOException {
        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, json);
        var e = assertThrows(BadInputException.class, () -> Tokenizer.load(file));
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e.getMessage();
    }

    private static final String BPE = "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}";

    @Test
    void aMissingFileIsNamed() {
        Path file = dir.resolve("nope.json");
        var e = assertThrows(BadInputException.class, () -> Tokenizer.load(file));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("no such file"), e.getMessage());
    }

    @Test
    void malformedJsonIsReported() throws IOException {
        assertTrue(failure("{\"model\": ").contains("not valid JSON"));
    }

    @Test
    void aMissingModelIsReported() throws IOException {
        assertTrue(failure("{\"normalizer\": null}").contains("model: missing"));
    }

    @Test
    void anotherModelTypeIsNamed() throws IOException {
        String m = failure("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        assertTrue(m.contains("model.type") && m.contains("WordPiece"), m);
    }

    @Test
    void anUnknownPreTokenizerIsNamedWithItsField() throws IOException {
        String m = failure("{\"model\": " + BPE + ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                + "[{\"type\": \"ByteLevel\"}, {\"type\": \"Wobble\"}]}}");
        assertTrue(m.contains("pre_tokenizer.pretokenizers[1].type") && m.contains("Wobble"), m);
    }

    @Test
    void aMergeOutsideTheVocabularyIsReported() throws IOException {
        String m = failure("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}");
        assertTrue(m.contains("model:") && m.contains("ab"), m);
    }

    @Test
    void anUnusableRegexIsReported() throws IOException {
        String m = failure("{\"model\": " + BPE + ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"},"
                + " \"behavior\": \"Isolated\"}}");
        assertTrue(m.contains("pre_tokenizer.pattern.Regex"), m);
    }

    @Test
    void bothMergeSpellingsLoad() throws IOException {
        Path file = dir.resolve("t.json");
        Files.writeString(file, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"abb\": 3},"
                + " \"merges\": [\"a b\", [\"ab\", \"b\"]]}}");
        var t = Tokenizer.load(file);
        org.junit.jupiter.api.Assertions.assertArrayEquals(new int[] {3}, t.encodeIds("abb", false));
    }
}
