package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgufFields;
import dev.moe4j.io.gguf.GgufMetadata;
import dev.moe4j.io.gguf.GgufValue;
import dev.moe4j.io.gguf.GgufVocabulary;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A tokenizer.json written as GGUF's {@code tokenizer.ggml.*} metadata (as {@code moe4j convert} writes it) and read
 * back tokenises and decodes every fixture text as the tokenizer.json does: byte-level BPE as a gpt2 vocabulary,
 * metaspace BPE (byte fallback) as a SentencePiece-style llama vocabulary whose merges come from the scores.
 */
class GgufTokenizerTest {
    private static final Path FILE = Path.of("model.gguf");

    /** The GGUF metadata of a tokenizer.json's vocabulary, with the special tokens the tokenizer adds. */
    static GgufFields metadata(Path tokenizerJson, Consumer<GgufMetadata.Builder> more) {
        Tokenizer json = Tokenizer.load(tokenizerJson);
        var m = GgufMetadata.builder();
        GgufVocabulary.fromTokenizerJson(tokenizerJson, json.vocabSize()).addTo(m);
        int[] added = json.encodeIds("", true);
        m.put("tokenizer.ggml.add_bos_token", GgufValue.bool(added.length > 0));
        if (added.length > 0) {
            m.put("tokenizer.ggml.bos_token_id", GgufValue.uint32(added[0]));
        }
        more.accept(m);
        return new GgufFields(FILE, m.build());
    }

    @TestFactory
    Stream<DynamicTest> aVocabularyWrittenToGgufTokenisesEveryFixtureTextAsItsTokenizerJson() {
        var tests = new ArrayList<DynamicTest>();
        JsonNode variants = Json.read(TokenizerParityTest.resource("variants/cases.json")).get("variants");
        // Not metaspace_first: its pre-tokenizer splits words at "▁" before merging, which a GGUF vocabulary cannot
        // say (llama.cpp merges across words).
        for (String kind : List.of("bytelevel", "metaspace", "qwen2_style")) {
            Path file = TokenizerParityTest.resource(kind.contains("_") ? "variants/" + kind + ".json"
                    : kind + "/tokenizer.json");
            Tokenizer json = Tokenizer.load(file);
            Tokenizer gguf = Tokenizer.fromGguf(metadata(file, m -> { }));
            var texts = new ArrayList<String>();
            if (!kind.contains("_")) {
                Json.read(TokenizerParityTest.resource(kind + "/reference.json")).get("cases")
                        .forEach(c -> texts.add(c.get("text").asText()));
            }
            variants.path(kind).forEach(c -> texts.add(c.get("text").asText()));
            // GGUF has no normalizer (llama.cpp does not normalise text), so qwen2_style's NFC is left to the text.
            texts.removeIf(t -> !java.text.Normalizer.isNormalized(t, java.text.Normalizer.Form.NFC));
            assertFalse(texts.isEmpty(), kind);
            for (String text : texts) {
                tests.add(DynamicTest.dynamicTest(kind + ": " + text.replace("\n", "\\n"), () -> {
                    int[] ids = json.encodeIds(text, true);
                    assertArrayEquals(ids, gguf.encodeIds(text, true), () -> "ids with special tokens of " + text);
                    assertArrayEquals(json.encodeIds(text, false), gguf.encodeIds(text, false), "ids without");
                    assertEquals(json.decode(ids, false), gguf.decode(ids, false), "decoded");
                    assertEquals(json.decode(ids, true), gguf.decode(ids, true), "decoded without specials");
                }));
            }
        }
        return tests.stream();
    }

    @Test
    void aSentencePieceVocabularyMergesTheHighestScoringPairLeftmostFirst() {
        // "ab" outscores "bc", so "abc" is ab + c even though bc is listed first; equal scores go leftmost.
        var m = GgufMetadata.builder()
                .put("tokenizer.ggml.model", GgufValue.string("llama"))
                .put("tokenizer.ggml.tokens", GgufValue.strings(List.of("<unk>", "<s>", "</s>", "\u2581", "a", "b",
                        "c", "bc", "ab", "\u2581a", "<0x21>")))
                .put("tokenizer.ggml.scores", GgufValue.float32s(0, 0, 0, -1, -1, -1, -1, -2, -3, -3, 0))
                .put("tokenizer.ggml.token_type", GgufValue.int32s(2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6))
                .put("tokenizer.ggml.add_space_prefix", GgufValue.bool(false));
        Tokenizer t = Tokenizer.fromGguf(new GgufFields(FILE, m.build()));
        assertArrayEquals(new int[] {1, 7, 8}, t.encodeIds("bcab", true), "BOS added by default, bc + ab");
        assertArrayEquals(new int[] {4, 7}, t.encodeIds("abc", false), "bc (-2) outscores ab (-3)");
        assertArrayEquals(new int[] {9, 9}, t.encodeIds(" a a", false), "equal scores: leftmost first");
        assertArrayEquals(new int[] {10}, t.encodeIds("!", false), "a character outside the vocabulary: bytes");
        assertEquals("bcab!", t.decode(new int[] {1, 7, 8, 10}, true));
    }

    @Test
    void aMissingOrMistypedVocabularyKeyIsRefusedByName() {
        var none = new GgufFields(FILE, GgufMetadata.builder().build());
        var e = assertThrows(BadInputException.class, () -> Tokenizer.fromGguf(none));
        assertEquals("model.gguf: metadata 'tokenizer.ggml.tokens' is missing: the file has no vocabulary, so moe4j"
                + " cannot tokenise text for it", e.getMessage());
        var m = GgufMetadata.builder()
                .put("tokenizer.ggml.model", GgufValue.string("gpt2"))
                .put("tokenizer.ggml.pre", GgufValue.string("chatglm-bpe"))
                .put("tokenizer.ggml.tokens", GgufValue.strings(List.of("a")));
        e = assertThrows(BadInputException.class, () -> Tokenizer.fromGguf(new GgufFields(FILE, m.build())));
        assertTrue(e.getMessage().startsWith("model.gguf: metadata 'tokenizer.ggml.pre' is 'chatglm-bpe', a"
                + " pre-tokenizer moe4j does not know"), e.getMessage());
        var types = GgufMetadata.builder()
                .put("tokenizer.ggml.model", GgufValue.string("gpt2"))
                .put("tokenizer.ggml.tokens", GgufValue.strings(List.of("a", "b")))
                .put("tokenizer.ggml.token_type", GgufValue.int32s(1));
        e = assertThrows(BadInputException.class, () -> Tokenizer.fromGguf(new GgufFields(FILE, types.build())));
        assertEquals("model.gguf: metadata 'tokenizer.ggml.token_type' has 1 entries for 2 tokens", e.getMessage());
        var bos = GgufMetadata.builder()
                .put("tokenizer.ggml.model", GgufValue.string("gpt2"))
                .put("tokenizer.ggml.tokens", GgufValue.strings(List.of("a", "b")))
                .put("tokenizer.ggml.bos_token_id", GgufValue.string("1"));
        e = assertThrows(BadInputException.class, () -> Tokenizer.fromGguf(new GgufFields(FILE, bos.build())));
        assertEquals("model.gguf: metadata 'tokenizer.ggml.bos_token_id' must be one integer, got a STRING",
                e.getMessage());
    }

    @Test
    void aSyntheticVocabularyLoadsAndDecodesItsTokens() {
        var m = GgufMetadata.builder();
        GgufVocabulary.synthetic(50, Set.of(2)).addTo(m);
        Tokenizer t = Tokenizer.fromGguf(new GgufFields(FILE, m.build()));
        assertEquals(50, t.vocabSize());
        assertTrue(t.isSpecial(2));
        assertEquals("<t7><t8>", t.decode(new int[] {7, 2, 8}, true));
    }
}
