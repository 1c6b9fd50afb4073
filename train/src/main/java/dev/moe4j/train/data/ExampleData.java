package dev.moe4j.train.data;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.function.Supplier;

/**
 * Example data: a JSONL file whose lines are JSON objects, one example a line, each of one of the kinds that
 * TRL's SFTTrainer and transformers take:
 * <ul>
 *   <li>{@code {"messages": [{"role", "content"}, ...]}}: a conversation rendered by the chat template, labels on the
 *       assistant's text only ({@link ConversationTokens});</li>
 *   <li>{@code {"prompt": ..., "completion": ...}}: strings, tokenised apart (the prompt as a text, with the
 *       tokenizer's special tokens, the completion without them, then the end-of-sequence token), labels on the
 *       completion; or lists of messages, rendered together, labels on what the completion's messages add;</li>
 *   <li>{@code {"text": ...}}: tokenised with the special tokens, then end-of-sequence; labels everywhere;</li>
 *   <li>{@code {"input_ids": [...], "labels": [...]}}: as they are; labels optional (then all of them), of the
 *       same length, -100 where nothing is learned.</li>
 * </ul>
 * Other keys are ignored. A line that is none of these, or holds a bad value, is refused in one line naming the
 * file, the line and the field.
 */
public final class ExampleData {
    private ExampleData() {
    }

    /**
     * What turns text into tokens.
     *
     * @param tokenizer    null when there is none (then only {@code input_ids} lines can be read)
     * @param chatTemplate the template of {@code messages} lines; asked for at the first such line, so that it may
     *                     throw why there is none
     * @param eos          the id put after a text or a completion, or -1 for none
     * @param vocabSize    the bound of every id
     */
    public record Sources(Tokenizer tokenizer, Supplier<ChatTemplate> chatTemplate, int eos, int vocabSize) {
    }

    /** Whether {@code file} holds example data: its first line that is not blank starts a JSON object. */
    public static boolean isExampleData(Path file) {
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            while ((line = reader.readLine()) != null) {
                String s = line.strip();
                if (!s.isEmpty()) {
                    return s.startsWith("{");
                }
            }
            return false;
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + BadInputException.oneLine(e.getMessage()) + ")");
        }
    }

    /** Every example of {@code file}, in file order (blank lines skipped). */
    public static List<Example> read(Path file, Sources sources) {
        var out = new ArrayList<Example>();
        var template = new ChatTemplateOnce(sources.chatTemplate());
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            int number = 0;
            while ((line = reader.readLine()) != null) {
                number++;
                if (!line.isBlank()) {
                    out.add(parse(file, number, line, sources, template));
                }
            }
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new BadInputException(file + ": not UTF-8 text");
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + BadInputException.oneLine(e.getMessage()) + ")");
        }
        if (out.isEmpty()) {
            throw new BadInputException(file + ": no examples (every line is blank)");
        }
        return out;
    }

    /** The chat template, asked for once. */
    private static final class ChatTemplateOnce {
        private final Supplier<ChatTemplate> source;
        private ChatTemplate template;

        ChatTemplateOnce(Supplier<ChatTemplate> source) {
            this.source = source;
        }

        ChatTemplate get(String where) {
            if (template == null) {
                try {
                    template = source.get();
                } catch (BadInputException e) {
                    throw new BadInputException(where + "messages need a chat template: " + e.getMessage());
                }
            }
            return template;
        }
    }

    private static Example parse(Path file, int number, String line, Sources sources, ChatTemplateOnce template) {
        String name = file.getFileName() + ":" + number;
        String where = file + ": line " + number + ": ";
        JsonNode o = Json.parse(line, file + ": line " + number);
        if (!o.isObject()) {
            throw new BadInputException(where + "expected a JSON object (this file's first line is one)");
        }
        Example example;
        if (o.has("messages")) {
            var messages = messages(where, "messages", o.get("messages"));
            if (messages.stream().noneMatch(m -> m.role().equals("assistant"))) {
                throw new BadInputException(where + "messages: no assistant message, so nothing to learn");
            }
            Tokenizer t = tokenizer(where, "messages", sources);
            example = ConversationTokens.assistantOnly(name, where, template.get(where), t, messages);
        } else if (o.has("prompt") || o.has("completion")) {
            if (!o.has("prompt") || !o.has("completion")) {
                throw new BadInputException(where + (o.has("prompt") ? "completion" : "prompt") + ": missing (a "
                        + "prompt comes with a completion)");
            }
            JsonNode prompt = o.get("prompt"), completion = o.get("completion");
            if (prompt.isArray() || completion.isArray()) {
                Tokenizer t = tokenizer(where, "prompt", sources);
                example = ConversationTokens.completionOnly(name, where, template.get(where), t,
                        messages(where, "prompt", prompt), messages(where, "completion", completion));
            } else {
                Tokenizer t = tokenizer(where, "prompt", sources);
                int[] p = t.encodeIds(text(where, "prompt", prompt, true), true);
                int[] c = withEos(t.encodeIds(text(where, "completion", completion, false), false), sources.eos());
                int[] ids = concat(p, c), labels = ids.clone();
                Arrays.fill(labels, 0, p.length, Graph.IGNORE);
                example = new Example(name, ids, labels);
            }
        } else if (o.has("text")) {
            int[] ids = withEos(tokenizer(where, "text", sources).encodeIds(text(where, "text", o.get("text"), false),
                    true), sources.eos());
            example = new Example(name, ids, ids.clone());
        } else if (o.has("input_ids")) {
            int[] ids = ids(where, "input_ids", o.get("input_ids"), sources.vocabSize(), false);
            int[] labels = ids.clone();
            if (o.has("labels")) {
                labels = ids(where, "labels", o.get("labels"), sources.vocabSize(), true);
                if (labels.length != ids.length) {
                    throw new BadInputException(where + "labels: " + labels.length + " labels for " + ids.length
                            + " input_ids (expected one per id)");
                }
            }
            example = new Example(name, ids, labels);
        } else {
            var keys = new ArrayList<String>();
            o.fieldNames().forEachRemaining(keys::add);
            throw new BadInputException(where + "expected \"messages\", \"prompt\" and \"completion\", \"text\" or "
                    + "\"input_ids\"; found " + (keys.isEmpty() ? "no keys" : BadInputException.quote(String.join(", ", keys))));
        }
        if (example.length() < 2) {
            throw new BadInputException(where + "an example needs at least 2 tokens (the first predicts the second); "
                    + "this one has " + example.length());
        }
        if (example.lossTokens() == 0) {
            throw new BadInputException(where + "no token carries a label (the first position never does), so "
                    + "nothing is learned from this example");
        }
        for (int id : example.ids()) {
            if (id >= sources.vocabSize()) {
                throw new BadInputException(where + "token id " + id + " outside the vocabulary [0, "
                        + sources.vocabSize() + ")");
            }
        }
        return example;
    }

    private static Tokenizer tokenizer(String where, String field, Sources sources) {
        if (sources.tokenizer() == null) {
            throw new BadInputException(where + field + ": text needs a tokenizer: give --tokenizer, or --init a "
                    + "model that has one (input_ids lines need none)");
        }
        return sources.tokenizer();
    }

    private static String text(String where, String field, JsonNode node, boolean mayBeEmpty) {
        if (!node.isTextual()) {
            throw new BadInputException(where + field + ": expected a string, got " + kind(node));
        }
        if (!mayBeEmpty && node.asText().isEmpty()) {
            throw new BadInputException(where + field + ": empty");
        }
        return node.asText();
    }

    private static List<ChatTemplate.Message> messages(String where, String field, JsonNode node) {
        if (!node.isArray() || node.isEmpty()) {
            throw new BadInputException(where + field + ": expected a non-empty list of messages, got " + kind(node));
        }
        var out = new ArrayList<ChatTemplate.Message>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode m = node.get(i);
            String at = field + "[" + i + "]";
            if (!m.isObject()) {
                throw new BadInputException(where + at + ": expected an object with role and content, got " + kind(m));
            }
            JsonNode role = m.get("role"), content = m.get("content");
            if (role == null || !role.isTextual() || role.asText().isEmpty()) {
                throw new BadInputException(where + at + ".role: expected a role (system, user, assistant, ...), got "
                        + (role == null ? "nothing" : kind(role)));
            }
            if (content == null || !content.isTextual()) {
                throw new BadInputException(where + at + ".content: expected a string, got "
                        + (content == null ? "nothing" : kind(content)));
            }
            var fields = new LinkedHashMap<String, Object>();
            m.properties().forEach(e -> {
                if (!e.getKey().equals("role") && !e.getKey().equals("content")) {
                    fields.put(e.getKey(), Json.mapper().convertValue(e.getValue(), Object.class));
                }
            });
            out.add(new ChatTemplate.Message(role.asText(), content.asText(), fields));
        }
        return out;
    }

    private static int[] ids(String where, String field, JsonNode node, int vocabSize, boolean labels) {
        if (!node.isArray()) {
            throw new BadInputException(where + field + ": expected a list of token ids, got " + kind(node));
        }
        int[] out = new int[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = node.get(i);
            if (!v.canConvertToExactIntegral() || !v.canConvertToInt()) {
                throw new BadInputException(where + field + "[" + i + "]: expected a token id, got " + kind(v));
            }
            int id = v.asInt();
            boolean ignored = labels && id == Graph.IGNORE;
            if (!ignored && (id < 0 || id >= vocabSize)) {
                throw new BadInputException(where + field + "[" + i + "]: token id " + id + " outside the vocabulary [0, "
                        + vocabSize + ")" + (labels ? " (-100: no loss)" : ""));
            }
            out[i] = id;
        }
        return out;
    }

    private static String kind(JsonNode node) {
        return node.getNodeType().name().toLowerCase(java.util.Locale.ROOT) + " " + BadInputException.quote(node.toString());
    }

    private static int[] withEos(int[] ids, int eos) {
        if (eos < 0 || (ids.length > 0 && ids[ids.length - 1] == eos)) {
            return ids;
        }
        int[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = eos;
        return out;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Splits off the last {@code fraction} of the examples (at least one when there are two) for validation. */
    public static List<List<Example>> split(List<Example> examples, double fraction) {
        int n = examples.size();
        int valid = n < 2 || fraction <= 0 ? 0 : Math.max(1, (int) Math.round(n * fraction));
        return List.of(List.copyOf(examples.subList(0, n - valid)), List.copyOf(examples.subList(n - valid, n)));
    }
}
