package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Variants of the fixture tokenizers that reach what the fixtures do not (the Qwen2, DeepSeek-V3 and o200k split
 * patterns, NFKC/Lowercase/Strip/Replace, Digits/Punctuation/Whitespace, every split behaviour, Metaspace with
 * prepend_scheme first, unk fusing, BOS+EOS templates, added tokens with lstrip/rstrip/single_word), each with 56
 * texts (fixed and random) encoded and decoded by the Hugging Face tokenizers library itself
 * (scripts/make_tokenizer_fixtures.py, run where the library is installed).
 */
class TokenizerVariantParityTest {
    @TestFactory
    Stream<DynamicTest> everyVariantMatchesTheReferenceLibrary() throws IOException {
        JsonNode root = new ObjectMapper().readTree(TokenizerParityTest.resource("variants/cases.json").toFile());
        var tests = new ArrayList<DynamicTest>();
        root.get("variants").fields().forEachRemaining(v -> {
            String name = v.getKey();
            String file = name.equals("bytelevel") || name.equals("metaspace") ? name + "/tokenizer.json" : "variants/" + name + ".json";
            Tokenizer tokenizer = Tokenizer.load(TokenizerParityTest.resource(file));
            tests.add(DynamicTest.dynamicTest(name, () -> {
                for (JsonNode c : v.getValue()) {
                    String text = c.get("text").asText();
                    var e = tokenizer.encode(text, true);
                    String label = name + " on \"" + text.replace("\n", "\\n") + "\": ";
                    assertAll(label,
                            () -> assertArrayEquals(TokenizerParityTest.ints(c.get("ids")), e.ids(), label + "ids"),
                            () -> assertEquals(TokenizerParityTest.strings(c.get("tokens")), e.tokens(), label + "tokens"),
                            () -> assertArrayEquals(TokenizerParityTest.ints(c.get("ids_no_special")), tokenizer.encodeIds(text, false), label + "ids without specials"),
                            () -> assertEquals(c.get("decoded").asText(), tokenizer.decode(e.ids(), true), label + "decoded"),
                            () -> assertEquals(c.get("decoded_with_special").asText(), tokenizer.decode(e.ids(), false), label + "decoded with specials"));
                }
            }));
        });
        return tests.stream();
    }
}
