package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The split patterns of real tokenizer.json files (GPT-2/OLMoE, Qwen2/Qwen3, Llama 3, gpt-oss o200k, DeepSeek-V3,
 * and one with possessive and atomic constructs) cut sample texts exactly as the Python regex engine does
 * (regex_splits.json, made by scripts/make_regex_fixtures.py).
 */
class OnigRegexTest {
    @TestFactory
    Stream<DynamicTest> realSplitPatternsCutTextLikeTheReferenceEngine() throws IOException {
        JsonNode root = new ObjectMapper().readTree(TokenizerParityTest.resource("regex_splits.json").toFile());
        var tests = new ArrayList<DynamicTest>();
        root.get("patterns").fields().forEachRemaining(e -> {
            var steps = new ArrayList<PreTokenizer>();
            e.getValue().get("regexes").forEach(r -> steps.add(
                    new PreTokenizer.Split(OnigRegex.compile(r.asText()), SplitBehavior.ISOLATED, false)));
            var pre = new PreTokenizer.Sequence(steps);
            int k = 0;
            for (JsonNode c : e.getValue().get("cases")) {
                String text = c.get("text").asText();
                tests.add(DynamicTest.dynamicTest(e.getKey() + " #" + k++, () -> {
                    var pieces = pre.apply(List.of(new PreTokenizer.Piece(text, true))).stream()
                            .map(PreTokenizer.Piece::text).toList();
                    assertEquals(TokenizerParityTest.strings(c.get("pieces")), pieces);
                }));
            }
        });
        return tests.stream();
    }

    @Test
    void caseInsensitiveGroupsFoldUnicodeCaseLikeOniguruma() {
        // U+212A KELVIN SIGN folds to k; ſ (long s) folds to s
        assertTrue(OnigRegex.compile("(?i:'s|'k)").matcher("'\u212A").matches());
        assertTrue(OnigRegex.compile("(?i:'s)").matcher("'\u017F").matches());
    }

    @Test
    void onigurumaOnlySyntaxIsTranslated() {
        assertTrue(OnigRegex.compile("\\h+").matcher("0fA9").matches(), "\\h is a hex digit");
        assertTrue(OnigRegex.compile("\\p{^L}+").matcher("12 !").matches(), "\\p{^L} negates");
        assertTrue(OnigRegex.compile("\\p{Han}+").matcher("混合").matches(), "script names");
        assertTrue(OnigRegex.compile("[[:alpha:]]+").matcher("abcé").matches(), "POSIX brackets are Unicode");
        assertTrue(OnigRegex.compile("\\s+").matcher("\u00a0\u3000").matches(), "\\s is Unicode white space");
        assertTrue(OnigRegex.compile("(?m:a.b)").matcher("a\nb").matches(), "Ruby (?m) is dot-all");
        assertThrows(PatternSyntaxException.class, () -> OnigRegex.compile("a\\Kb"));
    }
}
