package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
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
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Mistral's [TOOL_CALLS] replies: read into OpenAI's tool_calls, and, served on the fixture model with a template of
 * Mistral's form, a required call written as [TOOL_CALLS] and a one-call list by constrained decoding.
 */
class MistralFormatTest {
    static final List<String> MARKERS = List.of("[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
            "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[INST]", "[/INST]");
    static final String TOOLS = """
            [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
               "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}},
               "required": ["unit", "days"], "additionalProperties": false}}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
               "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]}}}]""";

    @TempDir
    static Path dir;
    static TestServer server;
    static Tokenizer tokenizer;

    @BeforeAll
    static void start() throws IOException {
        Path folder = TestServer.toolsModelFolder(dir, "mistral-tools/tokenizer_config.json", MARKERS);
        tokenizer = Tokenizer.load(folder.resolve("tokenizer.json"));
        server = TestServer.start(folder, ModelFolder.Opener.CHECKPOINT);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static ToolCalls tools() {
        return ToolCalls.parse((ObjectNode) Json.parse("{\"tools\": " + TOOLS + "}", "t"));
    }

    @Test
    void aCallListBecomesToolCallsAndTheTextBeforeItContent() {
        var format = new MistralFormat(tokenizer);
        var r = format.read("Let me check. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\","
                + " \"days\": 3}}, {\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}]", true, tools());
        assertEquals("Let me check. ", r.content());
        assertEquals(List.of("get_weather", "get_time"), r.calls().stream().map(ToolCalls.Call::name).toList());
        assertEquals("{\"unit\":\"celsius\",\"days\":3}", r.calls().getFirst().arguments());
        assertNull(format.read("[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]", true, tools()).content());
        for (String broken : List.of("[TOOL_CALLS] [{\"name\": \"nope\", \"arguments\": {}}]", "[TOOL_CALLS] [{\"na",
                "[TOOL_CALLS] []")) {
            var b = format.read(broken, true, tools());
            assertTrue(b.calls().isEmpty());
            assertEquals(broken, b.content(), "what does not read as calls is shown");
        }
        assertEquals("Sure", format.read("Sure[TOOL_", false, tools()).content(), "a marker being written is held");
    }

    @Test
    void aRequiredCallComesBackAsToolCallsWholeOrStreamed() {
        String body = """
                {"messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 200, "tools": %s,
                 "tool_choice": "required", "temperature": 1.0, "seed": 4}""".formatted(TOOLS);
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions", body));
        JsonNode choice = reply.get("choices").get(0);
        assertEquals("tool_calls", choice.get("finish_reason").asText(), choice.toString());
        JsonNode call = choice.get("message").get("tool_calls").get(0).get("function");
        assertTrue(List.of("get_weather", "get_time").contains(call.get("name").asText()), call.toString());
        assertTrue(Json.parse(call.get("arguments").asText(), "arguments").isObject());

        var events = TestServer.events(server.post("/v1/chat/completions", body.replace("\"max_tokens\"",
                "\"stream\": true, \"max_tokens\"")));
        var streamed = TestServer.streamedChat(events);
        String content = streamed.content();
        var calls = streamed.toolCalls();
        assertFalse(content.contains("TOOL_CALLS"), content);
        assertEquals(1, calls.size());
        assertEquals(call, calls.getFirst().get("function"), "the same seed, the same call, streamed");
    }
}
