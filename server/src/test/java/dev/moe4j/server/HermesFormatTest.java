package dev.moe4j.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Qwen's replies: thoughts in <think> as reasoning, calls in <tool_call> blocks, and what streams of them. */
class HermesFormatTest {
    static ToolCalls tools() {
        return ToolCalls.parse((ObjectNode) Json.parse("""
                {"tools": [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
                  "properties": {"zone": {"type": "string"}}}}}]}""", "t"));
    }

    @Test
    void thoughtsAreReasoningAndTheRestIsTheReplyOrItsCalls() {
        var format = new HermesFormat(true);
        var r = format.read("<think>\nThe user greets me.\n</think>\n\nHello!", true, null);
        assertEquals("The user greets me.\n", r.reasoning());
        assertEquals("Hello!", r.content());
        r = format.read("<think>\nNeed the time.\n</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\":"
                + " {\"zone\": \"UTC\"}}\n</tool_call>", true, tools());
        assertEquals("Need the time.\n", r.reasoning());
        assertNull(r.content());
        assertEquals("{\"zone\":\"UTC\"}", r.calls().getFirst().arguments());
        assertEquals("no thoughts", format.read("no thoughts", true, null).content());
        assertNull(format.read("no thoughts", true, null).reasoning());
        var cut = format.read("<think>\nstill going", true, null);
        assertEquals("still going", cut.reasoning(), "a reply cut while thinking keeps its thoughts");
        var plain = new HermesFormat(false).read("<think>x</think>y", true, null);
        assertEquals("<think>x</think>y", plain.content(), "a template that does not think reads no thoughts");
    }

    @Test
    void whileStreamingReasoningAndContentOnlyGrowAndNoMarkupIsShown() {
        var format = new HermesFormat(true);
        String reply = "<think>\nHmm é.\n</think>\n\nHi there <tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n"
                + "</tool_call>";
        String content = "", reasoning = "";
        for (int cut = 0; cut <= reply.length(); cut++) {
            var r = format.read(reply.substring(0, cut), false, tools());
            String c = r.content() == null ? "" : r.content(), t = r.reasoning() == null ? "" : r.reasoning();
            assertTrue(c.startsWith(content) && t.startsWith(reasoning), reply.substring(0, cut));
            for (String markup : List.of("<", "think", "tool_call")) {
                assertFalse(c.contains(markup) || t.contains(markup), markup + " shown at " + cut + ": " + c + " | " + t);
            }
            content = c;
            reasoning = t;
        }
        assertEquals("Hmm é.\n", reasoning);
        assertEquals("Hi there ", content);
    }
}
