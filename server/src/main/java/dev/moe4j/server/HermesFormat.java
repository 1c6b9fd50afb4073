package dev.moe4j.server;

import dev.moe4j.model.generate.structured.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * Hermes-style tool calls, as the Qwen2.5 and Qwen3 templates ask for them: each call a
 * {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>} block after any text. The content is the text
 * before the first call (as vLLM's Hermes parser returns it); a block that does not read as a call of a listed
 * function leaves the whole reply as content.
 *
 * <p>Where the template thinks (Qwen3's: {@code thinks}), a reply that opens with {@code <think>} has its thoughts,
 * up to {@code </think>}, read as reasoning and the rest as the reply, tools or not (as vLLM's qwen3 reasoning parser
 * and llama.cpp's server split them).
 */
record HermesFormat(boolean thinks) implements ReplyFormat {
    static final String OPEN = "<tool_call>";
    static final String CLOSE = "</tool_call>";
    static final String THINK = "<think>", THOUGHT = "</think>";

    @Override
    public boolean alwaysRead() {
        return thinks;
    }

    @Override
    public boolean keepsSpecialTokens() {
        return false;
    }

    @Override
    public Reading read(String text, boolean finished, ToolCalls tools) {
        if (!thinks) {
            return calls(text, finished, tools, null);
        }
        String lead = text.stripLeading();
        if (!finished && lead.length() < THINK.length() && THINK.startsWith(lead)) {
            return new Reading("", null, List.of()); // perhaps the start of <think>
        }
        if (!lead.startsWith(THINK)) {
            return calls(text, finished, tools, null);
        }
        String inner = lead.substring(THINK.length()).stripLeading();
        int end = inner.indexOf(THOUGHT);
        if (end < 0) { // still thinking (or cut off while thinking)
            return new Reading("", finished ? inner : inner.substring(0, ReplyFormat.beforeMarker(inner, THOUGHT)),
                    List.of());
        }
        return calls(inner.substring(end + THOUGHT.length()).stripLeading(), finished, tools, inner.substring(0, end));
    }

    /** The reply after any reasoning, read for calls. */
    private Reading calls(String text, boolean finished, ToolCalls tools, String reasoning) {
        if (!finished) {
            return new Reading(text.substring(0, showable(text)), reasoning, List.of());
        }
        int first = text.indexOf(OPEN);
        if (first < 0 || tools == null) {
            return new Reading(text, reasoning, List.of());
        }
        var calls = new ArrayList<ToolCalls.Call>();
        int at = first;
        while (at >= 0) {
            int end = text.indexOf(CLOSE, at);
            ToolCalls.Call call = tools.call(text.substring(at + OPEN.length(), end < 0 ? text.length() : end).strip());
            if (call == null) {
                return new Reading(text, reasoning, List.of());
            }
            calls.add(call);
            at = end < 0 ? -1 : text.indexOf(OPEN, end);
        }
        String content = text.substring(0, first);
        return new Reading(content.isBlank() ? null : content, reasoning, calls);
    }

    /** The text that may be shown while streaming: up to a call's marker, or to where one could be starting. */
    static int showable(String s) {
        return ReplyFormat.beforeMarker(s, OPEN);
    }

    @Override
    public Shape forcedCall(List<ToolCalls.Function> functions) {
        Shape call = ToolCalls.callObject(functions);
        return new Shape.Sequence(List.of(Shape.Raw.of(OPEN + "\n"), call, Shape.Raw.of("\n" + CLOSE)));
    }
}
