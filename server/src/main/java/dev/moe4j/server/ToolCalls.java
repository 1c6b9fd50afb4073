package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.generate.structured.JsonSchemas;
import dev.moe4j.model.generate.structured.Shape;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A request's {@code tools} and {@code tool_choice}, in the tool-call format of Hermes-style chat templates, which
 * Qwen2.5 and Qwen3 use: the template lists the functions, and the model answers a call with
 * {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>}. With {@code tool_choice} "auto" the reply is
 * read for such blocks afterwards; "required" or a named function constrain decoding to exactly one call whose
 * arguments follow the function's parameter schema (as vLLM does with guided decoding); "none" lists the tools but
 * reads no calls.
 */
final class ToolCalls {
    static final String OPEN = "<tool_call>";
    static final String CLOSE = "</tool_call>";

    enum Choice { NONE, AUTO, REQUIRED, NAMED }

    record Function(String name, Shape arguments, Map<String, Object> definition) {
    }

    /** One call the model made: the function's name and its arguments as a JSON text (OpenAI's form). */
    record Call(String id, String name, String arguments) {
    }

    /** A reply read for calls: the text before the first call (null if blank) and the calls. */
    record Split(String content, List<Call> calls) {
    }

    private final List<Function> functions;
    private final Choice choice;
    private final String named;

    private ToolCalls(List<Function> functions, Choice choice, String named) {
        this.functions = functions;
        this.choice = choice;
        this.named = named;
    }

    /** The tools of a chat request, or null where it has none. */
    static ToolCalls parse(ObjectNode o) {
        JsonNode tools = o.get("tools");
        JsonNode choiceNode = o.get("tool_choice");
        if (tools == null || tools.isNull() || (tools.isArray() && tools.isEmpty())) {
            if (choiceNode != null && !choiceNode.isNull() && !choiceNode.asText("").equals("none")
                    && !choiceNode.asText("").equals("auto")) {
                throw ApiError.invalid("tool_choice", "tool_choice asks for a call but the request has no tools").refuse();
            }
            return null;
        }
        if (!tools.isArray()) {
            throw ApiError.invalid("tools", "tools: expected a list of {type: \"function\", function: {...}}").refuse();
        }
        var functions = new ArrayList<Function>();
        for (int i = 0; i < tools.size(); i++) {
            String at = "tools[" + i + "]";
            JsonNode tool = tools.get(i);
            if (!tool.path("type").asText("").equals("function") || !(tool.get("function") instanceof ObjectNode f)) {
                throw ApiError.invalid(at, at + ": expected {type: \"function\", function: {name, parameters}}").refuse();
            }
            String name = f.path("name").asText("");
            if (!name.matches("[A-Za-z0-9_.-]{1,64}")) {
                throw ApiError.invalid(at + ".function.name", at + ".function.name: expected 1 to 64 letters, digits,"
                        + " '_', '.' or '-', got " + BadInputException.oneLine(f.path("name").toString())).refuse();
            }
            if (functions.stream().anyMatch(g -> g.name.equals(name))) {
                throw ApiError.invalid(at + ".function.name", at + ".function.name: " + name + " is listed twice").refuse();
            }
            JsonNode parameters = f.get("parameters");
            Shape arguments;
            try {
                arguments = parameters == null || parameters.isNull() ? JsonSchemas.anyObject()
                        : JsonSchemas.compile(parameters, at + ".function.parameters");
            } catch (BadInputException e) {
                throw ApiError.invalid(at + ".function.parameters", e.getMessage()).refuse();
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> definition = Json.mapper().convertValue(tool, LinkedHashMap.class);
            functions.add(new Function(name, arguments, definition));
        }
        Choice choice = Choice.AUTO;
        String named = null;
        if (choiceNode != null && !choiceNode.isNull()) {
            if (choiceNode.isTextual()) {
                choice = switch (choiceNode.asText()) {
                    case "none" -> Choice.NONE;
                    case "auto" -> Choice.AUTO;
                    case "required" -> Choice.REQUIRED;
                    default -> throw ApiError.invalid("tool_choice", "tool_choice: expected none, auto, required or"
                            + " {type: \"function\", function: {name}}").refuse();
                };
            } else {
                named = choiceNode.path("function").path("name").asText("");
                String wanted = named;
                if (functions.stream().noneMatch(f -> f.name.equals(wanted))) {
                    throw ApiError.invalid("tool_choice", "tool_choice names " + BadInputException.quote(named)
                            + ", which is not among the tools").refuse();
                }
                choice = Choice.NAMED;
            }
        }
        return new ToolCalls(List.copyOf(functions), choice, named);
    }

    Choice choice() {
        return choice;
    }

    /** Whether replies are read for calls. */
    boolean readsCalls() {
        return choice != Choice.NONE;
    }

    /** The tools as the chat template's {@code tools} variable (OpenAI's objects, as transformers passes them). */
    List<Map<String, Object>> forTemplate() {
        return functions.stream().map(Function::definition).toList();
    }

    /** Whether a chat template writes calls in the format read here. */
    static boolean understands(String chatTemplate) {
        return chatTemplate.contains(OPEN);
    }

    /**
     * What the reply must be when a call is required or named: one block whose name is a listed function (the
     * named one) and whose arguments follow that function's parameters. Null when the model is free.
     */
    Shape forcedReply() {
        if (choice != Choice.REQUIRED && choice != Choice.NAMED) {
            return null;
        }
        var calls = new ArrayList<Shape>();
        for (Function f : functions) {
            if (choice == Choice.NAMED && !f.name.equals(named)) {
                continue;
            }
            calls.add(new Shape.Object(List.of(
                    new Shape.Property("name", Shape.Literal.of(Json.compact(com.fasterxml.jackson.databind.node.TextNode.valueOf(f.name))), true),
                    new Shape.Property("arguments", f.arguments, true)), null));
        }
        Shape call = calls.size() == 1 ? calls.getFirst() : new Shape.AnyOf(calls);
        return new Shape.Sequence(List.of(Shape.Raw.of(OPEN + "\n"), call, Shape.Raw.of("\n" + CLOSE)));
    }

    /**
     * The calls in a reply: every {@code <tool_call>} block that holds a JSON object with a listed name and object
     * arguments. A reply with a block that does not read is all content (as vLLM's Hermes parser leaves it).
     */
    Split split(String text) {
        int first = text.indexOf(OPEN);
        if (first < 0) {
            return new Split(text, List.of());
        }
        var calls = new ArrayList<Call>();
        int at = first;
        while (at >= 0) {
            int end = text.indexOf(CLOSE, at);
            String body = text.substring(at + OPEN.length(), end < 0 ? text.length() : end).strip();
            Call call = call(body);
            if (call == null) {
                return new Split(text, List.of());
            }
            calls.add(call);
            at = end < 0 ? -1 : text.indexOf(OPEN, end);
        }
        String content = text.substring(0, first);
        return new Split(content.isBlank() ? null : content, calls);
    }

    private Call call(String body) {
        try {
            JsonNode node = Json.mapper().readTree(body);
            String name = node.path("name").asText(null);
            JsonNode arguments = node.get("arguments");
            if (name == null || functions.stream().noneMatch(f -> f.name.equals(name)) || arguments == null
                    || !arguments.isObject()) {
                return null;
            }
            return new Call(newId(), name, Json.mapper().writeValueAsString(arguments));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return null;
        }
    }

    private static String newId() {
        byte[] random = new byte[12];
        ThreadLocalRandom.current().nextBytes(random);
        return "call_" + HexFormat.of().formatHex(random);
    }

    /**
     * How much of a streamed reply may be shown now: all of it, unless a call has begun (then up to its marker) or
     * its end could be the start of one (then up to that start).
     */
    static int showable(CharSequence text) {
        String s = text.toString();
        int open = s.indexOf(OPEN);
        if (open >= 0) {
            return open;
        }
        for (int keep = Math.min(OPEN.length() - 1, s.length()); keep > 0; keep--) {
            if (OPEN.startsWith(s.substring(s.length() - keep))) {
                return s.length() - keep;
            }
        }
        return s.length();
    }

    /** The {@code tool_calls} list of a message or a delta. */
    static void put(ObjectNode message, List<Call> calls, boolean delta) {
        var list = message.putArray("tool_calls");
        for (int i = 0; i < calls.size(); i++) {
            Call c = calls.get(i);
            ObjectNode o = list.addObject();
            if (delta) {
                o.put("index", i);
            }
            o.put("id", c.id());
            o.put("type", "function");
            ObjectNode f = o.putObject("function");
            f.put("name", c.name());
            f.put("arguments", c.arguments());
        }
    }
}
