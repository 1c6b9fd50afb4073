package dev.moe4j.server;

import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.generate.structured.Shape;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * OpenAI's harmony format, which gpt-oss writes: a reply is messages, each a header (optional
 * {@code <|start|>assistant}, {@code <|channel|>} and its name, an optional recipient {@code to=functions.NAME} and
 * content type) then {@code <|message|>} and a body ended by {@code <|end|>}, {@code <|return|>} or {@code <|call|>}.
 * The analysis channel is reasoning, the final channel (and commentary to nobody) the content, commentary to a
 * function a tool call whose body is its JSON arguments. A reply without any channel is plain content.
 */
final class HarmonyFormat implements ReplyFormat {
    static final String START = "<|start|>", CHANNEL = "<|channel|>", MESSAGE = "<|message|>", END = "<|end|>",
            RETURN = "<|return|>", CALL = "<|call|>", CONSTRAIN = "<|constrain|>";

    private final Tokenizer tokenizer;
    private final Set<Integer> endIds;

    HarmonyFormat(Tokenizer tokenizer, Set<Integer> endIds) {
        this.tokenizer = tokenizer;
        this.endIds = Set.copyOf(endIds);
    }

    @Override
    public boolean alwaysRead() {
        return true;
    }

    @Override
    public boolean keepsSpecialTokens() {
        return true;
    }

    @Override
    public Reading read(String text, boolean finished, ToolCalls tools) {
        int first = firstMarker(text, 0);
        if (first < 0) {
            return new Reading(text, null, List.of()); // no channels: the model wrote plain text
        }
        var content = new StringBuilder(text.substring(0, first));
        var reasoning = new StringBuilder();
        var calls = new ArrayList<ToolCalls.Call>();
        int at = first;
        while (at < text.length()) {
            int message = text.indexOf(MESSAGE, at);
            if (message < 0) {
                break; // a header still being written
            }
            String header = text.substring(at, message);
            int bodyStart = message + MESSAGE.length();
            int end = bodyEnd(text, bodyStart);
            String body = text.substring(bodyStart, end < 0 ? text.length() : end);
            String recipient = field(header, "to=");
            String channel = channel(header);
            if (recipient != null && recipient.startsWith("functions.")) {
                if (finished && tools != null) {
                    ToolCalls.Call call = tools.call(recipient.substring("functions.".length()), body.strip());
                    if (call != null) {
                        calls.add(call);
                    } else {
                        content.append(body); // a call that does not read is shown, not dropped
                    }
                }
            } else if (channel.equals("analysis")) {
                reasoning.append(body);
            } else {
                content.append(body);
            }
            if (end < 0) {
                break;
            }
            at = end + marker(text, end).length();
            int next = firstMarker(text, at);
            at = next < 0 ? text.length() : next; // text between messages is not part of any
        }
        String c = content.toString();
        return new Reading(calls.isEmpty() || !c.isBlank() ? c : null, reasoning.isEmpty() ? null : reasoning.toString(),
                calls);
    }

    private static int firstMarker(String text, int from) {
        int start = text.indexOf(START, from), channel = text.indexOf(CHANNEL, from);
        return start < 0 ? channel : channel < 0 ? start : Math.min(start, channel);
    }

    private static int bodyEnd(String text, int from) {
        int best = -1;
        for (String m : List.of(END, RETURN, CALL, START)) {
            int i = text.indexOf(m, from);
            if (i >= 0 && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best;
    }

    private static String marker(String text, int at) {
        for (String m : List.of(END, RETURN, CALL)) {
            if (text.startsWith(m, at)) {
                return m;
            }
        }
        return ""; // a <|start|> with no end before it: the next message's header begins there
    }

    /** The channel's name in a header, or "" where it names none. */
    private static String channel(String header) {
        String name = field(header, CHANNEL);
        return name == null ? "" : name;
    }

    /** The word after {@code key} (such as "to=" or the channel marker) in a header, up to whitespace or a marker, or null. */
    private static String field(String header, String key) {
        int k = header.indexOf(key);
        if (k < 0) {
            return null;
        }
        int from = k + key.length(), stop = from;
        while (stop < header.length() && !Character.isWhitespace(header.charAt(stop)) && header.charAt(stop) != '<') {
            stop++;
        }
        return header.substring(from, stop);
    }

    @Override
    public Shape forcedCall(List<ToolCalls.Function> functions) {
        var calls = new ArrayList<Shape>();
        for (ToolCalls.Function f : functions) {
            var header = new ArrayList<Shape>(List.of(
                    raw(CHANNEL + "commentary to=functions." + f.name() + " " + CONSTRAIN + "json" + MESSAGE),
                    f.arguments()));
            if (!isEnd(CALL)) {
                header.add(raw(CALL)); // the call's end marker, where it does not end the generation itself
            }
            calls.add(new Shape.Sequence(header));
        }
        return calls.size() == 1 ? calls.getFirst() : new Shape.AnyOf(calls);
    }

    private boolean isEnd(String marker) {
        var id = tokenizer.tokenId(marker);
        return id.isPresent() && endIds.contains(id.getAsInt());
    }

    /** Text whose harmony markers are the tokenizer's special tokens where it has them, bytes elsewhere. */
    private Shape.Raw raw(String text) {
        return ReplyFormat.markup(tokenizer, text, List.of(START, CHANNEL, MESSAGE, END, RETURN, CALL, CONSTRAIN));
    }
}
