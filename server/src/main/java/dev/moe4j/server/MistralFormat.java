package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.generate.structured.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * Mistral's tool calls, as the templates of Mixtral-8x22B-Instruct and Mistral-7B-Instruct-v0.3 ask for them (the
 * tools listed between {@code [AVAILABLE_TOOLS]} and {@code [/AVAILABLE_TOOLS]}): the reply's calls are
 * {@code [TOOL_CALLS]} followed by a JSON list of {@code {"name": ..., "arguments": {...}}}. {@code [TOOL_CALLS]}
 * is a control token in those tokenizers, so replies are read with their special tokens. The content is the text
 * before the marker; a list that does not read as calls of listed functions leaves the whole reply as content (as
 * vLLM's Mistral parser does).
 */
final class MistralFormat implements ReplyFormat {
    static final String CALLS = "[TOOL_CALLS]";

    private final Tokenizer tokenizer;

    MistralFormat(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    @Override
    public boolean alwaysRead() {
        return false;
    }

    @Override
    public boolean keepsSpecialTokens() {
        return true;
    }

    @Override
    public Reading read(String text, boolean finished, ToolCalls tools) {
        if (!finished) {
            return new Reading(text.substring(0, ReplyFormat.beforeMarker(text, CALLS)), null, List.of());
        }
        int at = text.indexOf(CALLS);
        if (at < 0 || tools == null) {
            return new Reading(text, null, List.of());
        }
        var calls = new ArrayList<ToolCalls.Call>();
        try {
            JsonNode list = Json.mapper().readTree(text.substring(at + CALLS.length()).strip());
            for (JsonNode call : list == null ? List.<JsonNode>of() : list.isArray() ? list : List.of(list)) {
                ToolCalls.Call c = call.path("name").isTextual()
                        ? tools.call(call.get("name").asText(), String.valueOf(call.get("arguments"))) : null;
                if (c == null) {
                    return new Reading(text, null, List.of());
                }
                calls.add(c);
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return new Reading(text, null, List.of());
        }
        if (calls.isEmpty()) {
            return new Reading(text, null, List.of());
        }
        String content = text.substring(0, at);
        return new Reading(content.isBlank() ? null : content, null, calls);
    }

    @Override
    public Shape forcedCall(List<ToolCalls.Function> functions) {
        return new Shape.Sequence(List.of(ReplyFormat.markup(tokenizer, CALLS, List.of(CALLS)),
                new Shape.Array(ToolCalls.callObject(functions), 1, 1)));
    }
}
