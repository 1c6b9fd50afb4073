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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * gpt-oss's harmony replies: reasoning, content and calls read from the channels (the texts below are in the form
 * OpenAI's harmony guide gives), never shrinking while a reply streams; and, served on the fixture model with
 * gpt-oss's chat template, a required call written as harmony and returned as OpenAI's tool_calls.
 */
class HarmonyFormatTest {
    static final List<String> MARKERS = List.of("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>",
            "<|call|>", "<|constrain|>");
    static final String TOOLS = """
            [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
               "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}},
               "required": ["unit", "days"], "additionalProperties": false}}}]""";

    @TempDir
    static Path dir;
    static TestServer server;
    static Tokenizer tokenizer;

    @BeforeAll
    static void start() throws IOException {
        Path folder = TestServer.toolsModelFolder(dir, "harmony/tokenizer_config.json", MARKERS);
        tokenizer = Tokenizer.load(folder.resolve("tokenizer.json"));
        int ret = tokenizer.tokenId("<|return|>").orElseThrow(), call = tokenizer.tokenId("<|call|>").orElseThrow();
        Files.writeString(folder.resolve("generation_config.json"), "{\"eos_token_id\": [" + ret + ", " + call + "]}");
        server = TestServer.start(folder, ModelFolder.Opener.CHECKPOINT);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static ToolCalls tools() {
        return ToolCalls.parse((ObjectNode) Json.parse("{\"tools\": " + TOOLS + "}", "t"));
    }

    static HarmonyFormat format() {
        return new HarmonyFormat(tokenizer, Set.of(tokenizer.tokenId("<|return|>").orElseThrow(),
                tokenizer.tokenId("<|call|>").orElseThrow()));
    }

    @Test
    void channelsBecomeReasoningContentAndCalls() {
        var r = format().read("<|channel|>analysis<|message|>User asks for the weather.<|end|><|start|>assistant"
                + "<|channel|>final<|message|>It is sunny.<|return|>", true, tools());
        assertEquals("User asks for the weather.", r.reasoning());
        assertEquals("It is sunny.", r.content());
        assertTrue(r.calls().isEmpty());

        for (String call : List.of(
                "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant<|channel|>commentary"
                        + " to=functions.get_weather <|constrain|>json<|message|>{\"unit\": \"celsius\", \"days\": 2}<|call|>",
                "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant to=functions.get_weather"
                        + "<|channel|>commentary json<|message|>{\"unit\":\"celsius\",\"days\":2}")) {
            r = format().read(call, true, tools());
            assertEquals("Need the tool.", r.reasoning());
            assertNull(r.content());
            assertEquals(1, r.calls().size());
            assertEquals("get_weather", r.calls().getFirst().name());
            assertEquals("{\"unit\":\"celsius\",\"days\":2}", r.calls().getFirst().arguments());
        }
        assertEquals("plain words", format().read("plain words", true, tools()).content());
        var unknown = format().read("<|channel|>commentary to=functions.nope <|constrain|>json<|message|>{}<|call|>",
                true, tools());
        assertTrue(unknown.calls().isEmpty());
        assertEquals("{}", unknown.content(), "a call of no listed function is shown rather than dropped");
    }

    @Test
    void whileStreamingReasoningAndContentOnlyGrowAndACallIsNeverShown() {
        String reply = "<|channel|>analysis<|message|>Think é.<|end|><|start|>assistant<|channel|>commentary"
                + " to=functions.get_weather <|constrain|>json<|message|>{\"unit\":\"celsius\",\"days\":1}<|call|>";
        String lastContent = "", lastReasoning = "";
        for (int cut = 0; cut <= reply.length(); cut++) {
            String prefix = reply.substring(0, cut);
            if (MARKERS.stream().anyMatch(m -> partOf(prefix, m))) {
                continue; // a special token arrives whole
            }
            var r = format().read(prefix, false, tools());
            String content = r.content() == null ? "" : r.content(), reasoning = r.reasoning() == null ? "" : r.reasoning();
            assertTrue(content.startsWith(lastContent) && reasoning.startsWith(lastReasoning), prefix);
            assertFalse(content.contains("celsius"), prefix);
            lastContent = content;
            lastReasoning = reasoning;
        }
        assertEquals("Think é.", lastReasoning);
    }

    /** Whether the text ends inside {@code marker}. */
    private static boolean partOf(String text, String marker) {
        for (int k = 1; k < marker.length(); k++) {
            if (text.endsWith(marker.substring(0, k))) {
                return true;
            }
        }
        return false;
    }

    @Test
    void aRequiredCallIsWrittenInHarmonyAndReturnedAsAToolCall() {
        String body = """
                {"messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 200, "tools": %s,
                 "tool_choice": "required"}""".formatted(TOOLS);
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions", body));
        JsonNode choice = reply.get("choices").get(0);
        assertEquals("tool_calls", choice.get("finish_reason").asText(), choice.toString());
        JsonNode call = choice.get("message").get("tool_calls").get(0).get("function");
        assertEquals("get_weather", call.get("name").asText());
        JsonNode arguments = Json.parse(call.get("arguments").asText(), "arguments");
        assertTrue(List.of("celsius", "fahrenheit").contains(arguments.get("unit").asText()), arguments.toString());
        assertTrue(arguments.get("days").isIntegralNumber(), arguments.toString());

        var events = TestServer.events(server.post("/v1/chat/completions", body.replace("\"max_tokens\"",
                "\"stream\": true, \"max_tokens\"")));
        var streamed = TestServer.streamedChat(events);
        String content = streamed.content();
        var calls = streamed.toolCalls();
        assertFalse(content.contains("<|"), content);
        assertEquals(1, calls.size());
        assertEquals(call.get("arguments").asText(), calls.getFirst().get("function").get("arguments").asText());
    }

    @Test
    void aFreeReplyWithoutChannelsIsPlainContent() {
        JsonNode reply = TestServer.ok(server.post("/v1/chat/completions",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 6}"));
        JsonNode message = reply.get("choices").get(0).get("message");
        assertTrue(message.get("content").isTextual(), message.toString());
        assertFalse(message.has("tool_calls"));
    }
}
