package dev.moe4j.server;

import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.generate.structured.Shape;

import java.util.List;

/**
 * How a chat model's reply carries more than text: its reasoning and its tool calls. A chat template says which
 * format its model writes: Hermes-style {@code <tool_call>} blocks (Qwen2.5, Qwen3), Mistral's {@code [TOOL_CALLS]}
 * list (Mixtral-8x22B-Instruct, Mistral-7B-Instruct-v0.3) or OpenAI's harmony channels (gpt-oss). Replies are read from their text ({@link #read}), again as they grow while streaming; a required or
 * named call is written by constrained decoding ({@link #forcedCall}).
 */
public sealed interface ReplyFormat permits HermesFormat, HarmonyFormat, MistralFormat {
    /** A reply read: the text for the user (null when there is none beside calls), the reasoning, the calls. */
    public record Reading(String content, String reasoning, List<ToolCalls.Call> calls) {
    }

    /**
     * The format of a chat template's model, or null for plain text: harmony where the template writes channels,
     * Hermes where it asks for {@code <tool_call>} blocks.
     */
    public static ReplyFormat of(String chatTemplate, Tokenizer tokenizer, java.util.Set<Integer> endIds) {
        if (chatTemplate.contains("<|channel|>")) {
            return new HarmonyFormat(tokenizer, endIds);
        }
        if (chatTemplate.contains(HermesFormat.OPEN)) {
            return new HermesFormat(chatTemplate.contains(HermesFormat.THINK));
        }
        if (chatTemplate.contains(MistralFormat.CALLS) || chatTemplate.contains("[AVAILABLE_TOOLS]")) {
            return new MistralFormat(tokenizer);
        }
        return null;
    }

    /**
     * Raw text whose {@code markers} are the tokenizer's special tokens where it has them (a model writes those as
     * the one token, never as their characters), bytes elsewhere.
     */
    static Shape.Raw markup(Tokenizer tokenizer, String text, List<String> markers) {
        var symbols = new java.util.ArrayList<Integer>();
        int at = 0;
        while (at < text.length()) {
            String marker = null;
            for (String m : markers) {
                if (text.startsWith(m, at)) {
                    marker = m;
                }
            }
            var id = marker == null ? java.util.OptionalInt.empty() : tokenizer.tokenId(marker);
            if (id.isPresent() && tokenizer.isSpecial(id.getAsInt())) {
                symbols.add(dev.moe4j.model.generate.structured.TokenVocabulary.special(id.getAsInt()));
                at += marker.length();
            } else {
                int cp = text.codePointAt(at);
                for (byte b : new String(Character.toChars(cp)).getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
                    symbols.add(b & 0xFF);
                }
                at += Character.charCount(cp);
            }
        }
        return new Shape.Raw(symbols.stream().mapToInt(Integer::intValue).toArray());
    }

    /** How much of a streamed text may be shown before {@code marker}: up to it, or to where it could be starting. */
    static int beforeMarker(String s, String marker) {
        int at = s.indexOf(marker);
        if (at >= 0) {
            return at;
        }
        for (int keep = Math.min(marker.length() - 1, s.length()); keep > 0; keep--) {
            if (marker.startsWith(s.substring(s.length() - keep))) {
                return s.length() - keep;
            }
        }
        return s.length();
    }

    /** Whether the format is read even without tools (harmony separates reasoning from the answer). */
    boolean alwaysRead();

    /** Whether replies must be decoded with their special tokens (harmony's markers are special tokens). */
    boolean keepsSpecialTokens();

    /**
     * Reads a reply, or while streaming ({@code finished} false) the part of it that is final so far: the content
     * and reasoning only grow as the reply does, and a call's markup is never shown as content. Calls are read only
     * when {@code tools} is not null and only once finished.
     */
    Reading read(String text, boolean finished, ToolCalls tools);

    /** {@link #read} of a reply to a request without tools (the command line's chat). */
    default Reading read(String text, boolean finished) {
        return read(text, finished, null);
    }

    /** The reply when one call of one of {@code functions} must be made: the format's markup around it. */
    Shape forcedCall(List<ToolCalls.Function> functions);
}
