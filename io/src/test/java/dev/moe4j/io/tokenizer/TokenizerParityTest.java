package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every case of the reference fixtures (Hugging Face tokenizers 0.23): ids with and without special tokens, the
 * token strings, and the decoded text, for the byte-level and the metaspace (byte fallback) tokenizer.
 */
class TokenizerParityTest {
    static Path resource(String name) {
        try {
            return Path.of(TokenizerParityTest.class.getResource("/tokenizers/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @TestFactory
    Stream<DynamicTest> encodeAndDecodeMatchTheReferenceOnEveryFixtureCase() throws IOException {
        var tests = new ArrayList<DynamicTest>();
        for (String kind : List.of("bytelevel", "metaspace")) {
            Tokenizer tokenizer = Tokenizer.load(resource(kind + "/tokenizer.json"));
            JsonNode reference = new ObjectMapper().readTree(resource(kind + "/reference.json").toFile());
            for (JsonNode c : reference.get("cases")) {
                String text = c.get("text").asText();
                tests.add(DynamicTest.dynamicTest(kind + ": " + text.replace("\n", "\\n"), () -> {
                    var withSpecial = tokenizer.encode(text, true);
                    assertArrayEquals(ints(c.get("ids")), withSpecial.ids(), "ids with special tokens");
                    assertEquals(strings(c.get("tokens")), withSpecial.tokens(), "tokens");
                    assertArrayEquals(ints(c.get("ids_no_special")), tokenizer.encodeIds(text, false), "ids without special tokens");
                    assertEquals(c.get("decoded").asText(), tokenizer.decode(withSpecial.ids(), true), "decoded");
                }));
            }
        }
        return tests.stream();
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    static List<String> strings(JsonNode array) {
        var out = new ArrayList<String>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }
}
