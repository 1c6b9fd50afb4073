package dev.moe4j.model.generate.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The matcher against a JSON-schema validator nobody here wrote (networknt's): every output a random walk through
 * the matcher can finish is valid JSON that the validator accepts, documents the validator accepts are taken
 * whole (in schema order), and the usual mistakes are refused at the byte where they happen.
 */
class ByteMatcherTest {
    static final String WEATHER = """
            {"type": "object", "properties": {
               "city": {"type": "string", "minLength": 1, "maxLength": 12},
               "unit": {"enum": ["celsius", "fahrenheit"]},
               "days": {"type": "integer"},
               "hourly": {"type": "boolean"}},
             "required": ["city", "unit"], "additionalProperties": false}""";
    static final String NESTED = """
            {"type": "object", "properties": {
               "name": {"type": "string"},
               "scores": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4},
               "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}},
               "owner": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"id": {"type": "integer"}},
                         "required": ["id"]}]},
               "note": {"type": ["string", "null"]},
               "ok": {"const": true}},
             "required": ["name", "scores", "owner", "ok"]}""";
    static final String TREE = """
            {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object",
               "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"},
                              "maxItems": 2}},
               "required": ["v"], "additionalProperties": false}}}""";
    static final String FREE = """
            {"type": "object"}""";
    static final String ESCAPES = """
            {"type": "object", "properties": {"a\\"b": {"type": "string"}, "é": {"type": "number"}},
             "required": ["a\\"b", "é"]}""";

    static JsonNode json(String s) {
        try {
            return Json.mapper().readTree(s);
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    static Schema validator(String schema) {
        return SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(schema);
    }

    static ByteMatcher feed(ByteMatcher m, String text) {
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            if (m == null) {
                return null;
            }
            m = m.advance(b & 0xFF);
        }
        return m;
    }

    static boolean accepts(Shape shape, String text) {
        ByteMatcher m = feed(ByteMatcher.start(shape), text);
        return m != null && m.accepting();
    }

    /** A random walk over the bytes the matcher allows, drawn towards closing; null when it ran too long. */
    static String walk(Shape shape, SplittableRandom random) {
        ByteMatcher m = ByteMatcher.start(shape);
        var out = new java.io.ByteArrayOutputStream();
        for (int step = 0; step < 600; step++) {
            if (m.accepting() && random.nextInt(3) == 0) {
                return out.toString(StandardCharsets.UTF_8);
            }
            var options = new ArrayList<Integer>();
            var weights = new ArrayList<Integer>();
            for (int c = 0; c < 256; c++) {
                if (m.advance(c) != null) {
                    options.add(c);
                    int w = c == '"' || c == '}' || c == ']' ? 40 + step : c < 0x80 ? 4 : 1;
                    weights.add(c == ' ' || c == '\n' || c == '\t' || c == '\r' ? 1 : w);
                }
            }
            if (options.isEmpty()) {
                return m.accepting() ? out.toString(StandardCharsets.UTF_8) : fail("a dead end after " + out);
            }
            int total = weights.stream().mapToInt(Integer::intValue).sum(), r = random.nextInt(total), i = 0;
            while ((r -= weights.get(i)) >= 0) {
                i++;
            }
            out.write(options.get(i));
            m = m.advance(options.get(i));
        }
        return null;
    }

    static String fail(String message) {
        throw new AssertionError(message);
    }

    @ParameterizedTest
    @ValueSource(strings = {WEATHER, NESTED, TREE, FREE, ESCAPES})
    void everyOutputARandomWalkFinishesIsValidUnderTheReferenceValidator(String schemaText) {
        Shape shape = JsonSchemas.compile(json(schemaText), "schema");
        Schema reference = validator(schemaText);
        var random = new SplittableRandom(7);
        int finished = 0;
        for (int i = 0; i < 150; i++) {
            String text = walk(shape, random);
            if (text == null) {
                continue;
            }
            finished++;
            JsonNode doc = json(text); // parses as JSON
            var errors = reference.validate(doc);
            assertTrue(errors.isEmpty(), () -> text + " -> " + errors);
        }
        assertTrue(finished >= 50, "only " + finished + " walks finished");
    }

    @Test
    void validDocumentsInSchemaOrderAreTakenWithAnyWhitespace() {
        Shape weather = JsonSchemas.compile(json(WEATHER), "schema");
        assertTrue(accepts(weather, "{\"city\":\"Oslo\",\"unit\":\"celsius\"}"));
        assertTrue(accepts(weather, "{\n  \"city\": \"Oslo\",\n  \"unit\": \"fahrenheit\",\n  \"days\": -3,\n"
                + "  \"hourly\": false\n}\n"));
        assertTrue(accepts(weather, "{\"city\" : \"Oslo\" , \"unit\" : \"celsius\" } "));
        assertTrue(accepts(weather, " {\"city\":\"Zürich\",\"unit\":\"celsius\",\"hourly\":true}"));
        Shape nested = JsonSchemas.compile(json(NESTED), "schema");
        assertTrue(accepts(nested, "{\"name\":\"\\u00e9\\n\",\"scores\":[1.5e-3,-0,2E+10],\"tags\":[],"
                + "\"owner\":{\"id\":4},\"note\":null,\"ok\":true}"));
        assertTrue(accepts(nested, "{\"name\":\"x\",\"scores\":[0.25],\"owner\":null,\"ok\":true}"));
        Shape tree = JsonSchemas.compile(json(TREE), "schema");
        assertTrue(accepts(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}"));
        Shape free = JsonSchemas.compile(json(FREE), "schema");
        assertTrue(accepts(free, "{\"any\":[1,{\"deep\":[null,true,\"s\"]}],\"b\":{}}"));
        Shape escapes = JsonSchemas.compile(json(ESCAPES), "schema");
        assertTrue(accepts(escapes, "{\"a\\\"b\":\"q\",\"é\":1}"));
    }

    @Test
    void mistakesAreRefusedWhereTheyHappen() {
        Shape weather = JsonSchemas.compile(json(WEATHER), "schema");
        ByteMatcher start = ByteMatcher.start(weather);
        assertNull(feed(start, "["), "an array where an object must be");
        assertNull(feed(start, "{\"unit\""), "a required property skipped");
        assertNull(feed(start, "{\"city\":\"Oslo\",\"unit\":\"kelvin"), "outside the enum");
        assertNull(feed(start, "{\"city\":\"Oslo\",\"unit\":\"celsius\",\"wind\""), "an undeclared key");
        assertNull(feed(start, "{\"city\":\"Oslo\",\"unit\":\"celsius\"}x"), "text after the value");
        assertNull(feed(start, "{\"city\":\"\"}"), "minLength 1");
        assertNull(feed(start, "{\"city\":\"abcdefghijklm"), "maxLength 12");
        assertNull(feed(start, "{\"city\":\"a\",\"unit\":\"celsius\",\"days\":01"), "a leading zero");
        assertNull(feed(start, "{\"city\":\"a\",\"unit\":\"celsius\",\"days\":1.5"), "a fraction in an integer");
        assertNull(feed(start, "{\"city\":\"a\nb"), "a raw newline in a string");
        assertNull(feed(start, "{\"city\":\"a\\x"), "an unknown escape");
        ByteMatcher inString = feed(start, "{\"city\":\"");
        assertNull(inString.advance(0xFF), "a byte that is never UTF-8");
        assertNull(inString.advance(0xC3).advance('a'), "a lead byte without its continuation");
        assertNull(inString.advance(0xED).advance(0xA0), "a surrogate");
        assertNull(inString.advance(0xE0).advance(0x80), "an overlong form");
        assertNotNull(inString.advance(0xE2).advance(0x82).advance(0xAC), "the euro sign");
        assertFalse(feed(start, "{\"city\":\"Oslo\",\"unit\":\"celsius\"").accepting(), "not closed yet");
        assertNull(feed(start, "  "), "two spaces");
        assertNull(feed(start, "\n\n"), "two newlines");
        assertNull(feed(start, "\n" + " ".repeat(ByteMatcher.MAX_INDENT + 1)), "endless indentation");
        assertNotNull(feed(start, "\n" + "\t".repeat(ByteMatcher.MAX_INDENT)));
        assertNull(feed(start, "{\"city\":\"a\",\"unit\":\"celsius\",\"days\":" + "9".repeat(ByteMatcher.MAX_NUMBER + 1)),
                "an endless number");
    }

    @Test
    void aSequenceTakesRawTextAroundAValueAndSpecialTokensOnlyAsThemselves() {
        int call = TokenVocabulary.special(7);
        Shape args = JsonSchemas.compile(json(WEATHER), "schema");
        var shape = new Shape.Sequence(List.of(Shape.Raw.of("<tool_call>\n"), args, new Shape.Raw(new int[] {call})));
        ByteMatcher m = feed(ByteMatcher.start(shape), "<tool_call>\n{\"city\":\"Oslo\",\"unit\":\"celsius\"}");
        assertNotNull(m);
        assertFalse(m.accepting());
        assertTrue(m.advance(call).accepting());
        assertNull(m.advance('<'), "the special token's text is not the token");
        assertNull(feed(ByteMatcher.start(shape), " <tool"), "no whitespace before raw text");
        assertNull(feed(ByteMatcher.start(args), "{\"city\":\"").advance(call), "no special token inside a string");
    }

    @Test
    void theVocabularyWalkAllowsExactlyTheIdsThatFitOneByOne() {
        var random = new SplittableRandom(3);
        String alphabet = "{}[]\":, \n0123456789-.eEtrufalsn\\abcityunOslo";
        int[][] symbols = new int[3000][];
        for (int id = 0; id < symbols.length; id++) {
            int length = 1 + random.nextInt(random.nextInt(4) == 0 ? 9 : 3);
            symbols[id] = new int[length];
            for (int i = 0; i < length; i++) {
                symbols[id][i] = alphabet.charAt(random.nextInt(alphabet.length()));
            }
        }
        symbols[17] = new int[] {TokenVocabulary.special(17)};
        symbols[18] = null;
        var vocabulary = TokenVocabulary.of(symbols);
        Shape weather = JsonSchemas.compile(json(WEATHER), "schema");
        String doc = "{\"city\": \"Oslo\", \"unit\": \"celsius\", \"days\": 12}";
        ByteMatcher m = ByteMatcher.start(weather);
        for (int at = 0; at <= doc.length(); at++) {
            var walked = new BitSet();
            vocabulary.allowed(m, walked);
            var oneByOne = new BitSet();
            for (int id = 0; id < symbols.length; id++) {
                if (symbols[id] != null && m.advance(symbols[id]) != null) {
                    oneByOne.set(id);
                }
            }
            assertEquals(oneByOne, walked, "after " + doc.substring(0, at));
            if (at < doc.length()) {
                m = m.advance(doc.charAt(at));
            }
        }
    }

    @Test
    void greedyChoiceUnderAConstraintIsTheArgmaxOfTheMaskedLogitsWhetherOrNotItMasks() {
        var random = new SplittableRandom(11);
        String alphabet = "{}\":, 0123456789abcdefghijklmnopqrstuvwxyz";
        int[][] symbols = new int[400][];
        for (int id = 0; id < symbols.length; id++) {
            symbols[id] = new int[1 + random.nextInt(3)];
            for (int i = 0; i < symbols[id].length; i++) {
                symbols[id][i] = alphabet.charAt(random.nextInt(alphabet.length()));
            }
        }
        var output = new StructuredOutput(JsonSchemas.compile(json(WEATHER), "schema"), TokenVocabulary.of(symbols), "t");
        var sampler = new dev.moe4j.model.generate.Sampler(dev.moe4j.model.generate.SamplingConfig.greedy());
        var fast = output.start(java.util.Set.of(0));
        var masked = output.start(java.util.Set.of(0));
        for (int step = 0; step < 60; step++) {
            float[] logits = new float[symbols.length];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = (float) random.nextGaussian();
            }
            float[] copy = logits.clone();
            int chosen = sampler.next(logits, new BitSet(), fast);
            masked.mask(copy);
            int best = dev.moe4j.model.generate.LogitsProcessors.argmax(copy);
            assertEquals(best, chosen, "step " + step);
            if (chosen == 0) {
                break;
            }
            fast.accept(chosen);
            masked.accept(chosen);
        }
    }

    @Test
    void schemasOutsideTheSupportedSubsetAreRefusedByKeywordAndPath() {
        var e = assertThrows(BadInputException.class, () -> JsonSchemas.compile(json(
                "{\"type\":\"object\",\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]+$\"}}}"),
                "response_format.json_schema.schema"));
        assertEquals("response_format.json_schema.schema.properties.zip.pattern: the keyword pattern is not supported"
                + " by moe4j's constrained decoding (supported: type, properties, required, additionalProperties, items,"
                + " minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf, $ref)", e.getMessage());
        assertThrows(BadInputException.class, () -> JsonSchemas.compile(json("{\"type\":\"date\"}"), "s"));
        assertThrows(BadInputException.class, () -> JsonSchemas.compile(json("{\"$ref\":\"#/$defs/x\"}"), "s"));
        assertThrows(BadInputException.class, () -> JsonSchemas.compile(json("{\"required\":[\"a\"]}"), "s"));
        assertThrows(BadInputException.class, () -> JsonSchemas.compile(json("false"), "s"));
        for (String selfish : List.of("{\"$ref\": \"#\"}", "{\"anyOf\": [{\"$ref\": \"#\"}, {\"$ref\": \"#\"}]}")) {
            ByteMatcher m = ByteMatcher.start(JsonSchemas.compile(json(selfish), "s"));
            for (int c = 0; c < 256; c++) {
                if (c != ' ' && c != '\n') { // the whitespace before a value
                    assertNull(m.advance(c), "a schema that is only itself allows nothing");
                }
            }
        }
    }
}
