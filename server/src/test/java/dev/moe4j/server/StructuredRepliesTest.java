package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * response_format and tools on a tiny random model, whose free output is noise: what comes back must still be JSON
 * that a schema validator nobody here wrote (networknt's) accepts, and tool calls that name a listed function with
 * arguments valid under its parameters, streamed or whole.
 */
class StructuredRepliesTest {
    static final String WEATHER = """
            {"type": "object", "properties": {
               "city": {"type": "string", "maxLength": 8},
               "unit": {"enum": ["celsius", "fahrenheit"]},
               "days": {"type": "integer"},
               "windy": {"type": "boolean"}},
             "required": ["city", "unit", "days"], "additionalProperties": false}""";
    static final String TOOLS = """
            [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
               "parameters": %s}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
               "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]}}}]""".formatted(WEATHER);

    @TempDir
    static Path dir;
    static TestServer server;

    @BeforeAll
    static void start() throws IOException {
        Path folder = TestServer.toolsModelFolder(dir, "hermes/tokenizer_config.json", List.of());
        server = TestServer.start(folder, ModelFolder.Opener.CHECKPOINT);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static JsonNode json(String text) {
        try {
            return Json.mapper().readTree(text);
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + text, e);
        }
    }

    static void assertValid(String schema, JsonNode value) {
        var errors = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(schema).validate(value);
        assertTrue(errors.isEmpty(), () -> value + " -> " + errors);
    }

    static String chat(String extra) {
        return chat(400, extra);
    }

    static String chat(int maxTokens, String extra) {
        return "{\"messages\": [{\"role\": \"user\", \"content\": \"What is the weather in Oslo?\"}], \"max_tokens\": "
                + maxTokens + ", " + extra + "}";
    }

    @Test
    void aJsonSchemaReplyIsValidUnderTheSchemaForEverySampledChoice() {
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions", chat("""
                "n": 4, "temperature": 1.5, "seed": 3, "response_format": {"type": "json_schema",
                "json_schema": {"name": "weather", "strict": true, "schema": %s}}""".formatted(WEATHER))));
        assertEquals(4, reply.get("choices").size());
        for (JsonNode choice : reply.get("choices")) {
            assertEquals("stop", choice.get("finish_reason").asText(), choice.toString());
            assertValid(WEATHER, json(choice.get("message").get("content").asText()));
        }
    }

    @Test
    void aJsonObjectReplyIsAnObjectOrAValidStartOfOneWhenItsBudgetEnds() {
        JsonNode reply = TestServer.ok(server.post("/v1/completions", """
                {"prompt": "Give me JSON:", "max_tokens": 300, "n": 3, "temperature": 1.0, "seed": 5,
                 "response_format": {"type": "json_object"}}"""));
        int whole = 0;
        for (JsonNode choice : reply.get("choices")) {
            String text = choice.get("text").asText();
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertTrue(json(text).isObject(), text);
                whole++;
            } else {
                assertEquals("length", choice.get("finish_reason").asText());
                assertTrue(text.strip().startsWith("{"), text);
            }
        }
        JsonNode greedy = TestServer.ok(server.post("/v1/completions", """
                {"prompt": "Give me JSON:", "max_tokens": 300, "response_format": {"type": "json_object"}}"""));
        assertTrue(whole > 0 || greedy.get("choices").get(0).get("finish_reason").asText().equals("stop"),
                "no reply finished its object: " + reply + greedy);
    }

    @Test
    void aNamedToolChoiceGivesOneCallOfThatFunctionWithValidArguments() {
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions", chat("""
                "tools": %s, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}""".formatted(TOOLS))));
        JsonNode choice = reply.get("choices").get(0);
        assertEquals("tool_calls", choice.get("finish_reason").asText(), choice.toString());
        JsonNode message = choice.get("message");
        assertTrue(message.get("content").isNull(), message.toString());
        JsonNode call = message.get("tool_calls").get(0);
        assertEquals(1, message.get("tool_calls").size());
        assertEquals("function", call.get("type").asText());
        assertTrue(call.get("id").asText().startsWith("call_"));
        assertEquals("get_weather", call.get("function").get("name").asText());
        assertValid(WEATHER, json(call.get("function").get("arguments").asText()));
    }

    @Test
    void aRequiredCallStreamsNoMarkupAndArrivesAsOneToolCallsDelta() {
        var events = TestServer.events(server.post("/v1/chat/completions", chat("""
                "stream": true, "tools": %s, "tool_choice": "required", "temperature": 1.2, "seed": 9""".formatted(TOOLS))));
        var streamed = TestServer.streamedChat(events);
        var calls = streamed.toolCalls();
        assertFalse(streamed.content().contains("<tool_call"), streamed.content());
        assertEquals("tool_calls", streamed.finish());
        assertEquals(1, calls.size(), calls.toString());
        JsonNode function = calls.getFirst().get("function");
        String name = function.get("name").asText();
        assertTrue(List.of("get_weather", "get_time").contains(name), name);
        JsonNode arguments = json(function.get("arguments").asText());
        if (name.equals("get_weather")) {
            assertValid(WEATHER, arguments);
        } else {
            assertTrue(List.of("UTC", "CET").contains(arguments.get("zone").asText()), arguments.toString());
        }
    }

    @Test
    void aReplyWithoutCallsUnderToolChoiceAutoIsPlainContent() {
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions", chat(8, """
                "tools": %s, "tool_choice": "auto\"""".formatted(TOOLS))));
        JsonNode choice = reply.get("choices").get(0);
        assertEquals("length", choice.get("finish_reason").asText());
        assertFalse(choice.get("message").has("tool_calls"));
        assertTrue(choice.get("message").get("content").isTextual());
    }

    /**
     * A class the official client turns into a strict JSON schema, and the reply back into an instance. Its fields
     * are bounded (a random model never closes an unbounded string or list; a trained one does).
     */
    public static class Forecast {
        public enum Unit { CELSIUS, FAHRENHEIT }

        public Unit unit;
        public long days;
        public boolean windy;
    }

    /** A function the official client describes from a class, with the arguments as its fields. */
    public static class GetTime {
        public enum Zone { UTC, CET }

        public Zone zone;
        public boolean seconds;
    }

    @Test
    void theOfficialClientsStructuredOutputsAndToolsFromClassesReadBackIntoTheirClasses() {
        var client = com.openai.client.okhttp.OpenAIOkHttpClient.builder().baseUrl(server.server.uri() + "v1")
                .apiKey("not-needed").maxRetries(0).build();
        try {
            var structured = com.openai.models.chat.completions.ChatCompletionCreateParams.builder()
                    .model("qwen3-moe").addUserMessage("Forecast for Oslo").maxCompletionTokens(600).temperature(0.0)
                    .responseFormat(Forecast.class).build();
            var forecast = client.chat().completions().create(structured).choices().getFirst().message().content()
                    .orElseThrow(); // the client parsed the reply into a Forecast
            assertTrue(forecast.unit != null);

            var tools = com.openai.models.chat.completions.ChatCompletionCreateParams.builder().model("qwen3-moe")
                    .addUserMessage("What time is it?").maxCompletionTokens(400).temperature(0.0)
                    .addTool(GetTime.class)
                    .toolChoice(com.openai.models.chat.completions.ChatCompletionToolChoiceOption.Auto.REQUIRED)
                    .build();
            var message = client.chat().completions().create(tools).validate().choices().getFirst().message();
            var call = message.toolCalls().orElseThrow().getFirst().asFunction().function();
            assertEquals("GetTime", call.name());
            GetTime arguments = call.arguments(GetTime.class);
            assertTrue(arguments.zone != null);
        } finally {
            client.close();
        }
    }

    @Test
    void requestsThatCannotBeHonouredAreRefusedNamingTheField() {
        var refusals = List.of(
                List.of(chat("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\","
                        + " \"schema\": {\"type\": \"string\", \"pattern\": \"^a\"}}}"), "response_format.json_schema.schema"),
                List.of(chat("\"response_format\": {\"type\": \"yaml\"}"), "response_format.type"),
                List.of(chat("\"response_format\": {\"type\": \"json_schema\"}"), "response_format.json_schema"),
                List.of(chat("\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"bad name\"}}]"),
                        "tools[0].function.name"),
                List.of(chat("\"tools\": " + TOOLS + ", \"tool_choice\": {\"type\": \"function\", \"function\":"
                        + " {\"name\": \"nope\"}}"), "tool_choice"),
                List.of(chat("\"tool_choice\": \"required\""), "tool_choice"),
                List.of(chat("\"tools\": " + TOOLS + ", \"tool_choice\": \"required\", \"response_format\":"
                        + " {\"type\": \"json_object\"}"), "response_format"));
        for (var r : refusals) {
            var response = server.post("/v1/chat/completions", r.get(0));
            assertEquals(400, response.statusCode(), response.body());
            assertEquals(r.get(1), json(response.body()).get("error").get("param").asText(), response.body());
        }
    }
}
