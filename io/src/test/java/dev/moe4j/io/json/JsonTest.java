package dev.moe4j.io.json;

import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** What a person reads about JSON moe4j cannot parse: JSON's terms, not the names of Jackson's switches. */
class JsonTest {
    private static String problem(String text) {
        var e = assertThrows(BadInputException.class, () -> Json.parse(text, "f.json"));
        return e.getMessage();
    }

    @Test
    void errorsSayWhatJsonDoesNotAllowWithoutNamingJacksonsFeaturesOrLimits() {
        Map<String, String> expected = Map.of(
                "{\"a\": NaN}", "f.json: not valid JSON: Non-standard token 'NaN' (JSON has no NaN or Infinity) at"
                        + " line 1, column 10",
                "{\"a\": 1 /* c */}", "f.json: not valid JSON: Unexpected character ('/' (code 47)): maybe a"
                        + " (non-standard) comment? (JSON has no comments) at line 1, column 9",
                "{\"a\": [1, 2", "f.json: not valid JSON: Unexpected end-of-input: expected close marker for Array"
                        + " (start marker at line 1, column 7) at line 1, column 12",
                "[".repeat(1001), "f.json: not valid JSON: Document nesting depth (1001) exceeds the maximum allowed"
                        + " (1000)",
                "{\"a\": " + "9".repeat(1001) + "}", "f.json: not valid JSON: Number value length (1001) exceeds the"
                        + " maximum allowed (1000)");
        expected.forEach((text, message) -> assertEquals(message, problem(text)));
    }

    @Test
    void anUnrecognisedTokenIsQuotedOnlyInPart() {
        assertEquals("f.json: not valid JSON: Unrecognized token '" + "z".repeat(40) + "...': was expecting (JSON"
                + " String, Number, Array, Object or token 'null', 'true' or 'false') at line 1, column 257",
                problem("z".repeat(500)));
    }
}
