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
 * A request's {@code tools} and {@code tool_choice}. The tools go to the chat template; the model's calls are read
 * by its {@link ReplyFormat}. With {@code tool_choice} "auto" the model chooses; "required" or a named function
 * constrain decoding to exactly one call whose arguments follow the function's parameter schema (as vLLM does with
 * guided decoding); "none" lists the tools but reads no calls.
 */
final class ToolCalls {
    enum Choice { NONE, AUTO, REQUIRED, NAMED }

    record Function(String name, Shape arguments, Map<String, Object> definition) {
    }

    /** One call the model made: the function's name and its arguments as a JSON text (OpenAI's form). */
    record Call(String id, String name, String arguments) {
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

    /**
     * What the reply must be when a call is required or named, in {@code format}: one call of a listed function
     * (the named one). Null when the model is free.
     */
    Shape forcedReply(ReplyFormat format) {
        if (choice != Choice.REQUIRED && choice != Choice.NAMED) {
            return null;
        }
        return format.forcedCall(functions.stream().filter(f -> choice != Choice.NAMED || f.name.equals(named))
                .toList());
    }

    /** Whether a call is required (or named). */
    boolean forced() {
        return choice == Choice.REQUIRED || choice == Choice.NAMED;
    }

    /**
     * One call of one of {@code functions} as JSON, {"name": ..., "arguments": {...}}: the name exactly, the
     * arguments valid under that function's parameters (the part every format's forced call shares).
     */
    static Shape callObject(List<Function> functions) {
        var calls = new java.util.ArrayList<Shape>();
        for (Function f : functions) {
            calls.add(new Shape.Object(List.of(new Shape.Property("name", jsonString(f.name()), true),
                    new Shape.Property("arguments", f.arguments(), true)), null));
        }
        return calls.size() == 1 ? calls.getFirst() : new Shape.AnyOf(calls);
    }

    /** A JSON string literal's shape: the name of a function, exactly. */
    static Shape jsonString(String text) {
        return Shape.Literal.of(Json.compact(com.fasterxml.jackson.databind.node.TextNode.valueOf(text)));
    }

    /** A Hermes block's JSON, {"name": ..., "arguments": {...}}, as a call of a listed function, or null. */
    Call call(String block) {
        try {
            JsonNode node = Json.mapper().readTree(block);
            return node == null || !node.path("name").isTextual() ? null
                    : call(node.get("name").asText(), String.valueOf(node.get("arguments")));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return null;
        }
    }

    /** A call of {@code name} with the JSON object {@code arguments}, or null where either is not right. */
    Call call(String name, String arguments) {
        if (functions.stream().noneMatch(f -> f.name.equals(name))) {
            return null;
        }
        try {
            JsonNode node = Json.mapper().readTree(arguments);
            return node == null || !node.isObject() ? null : new Call(newId(), name, Json.compact(node));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return null;
        }
    }

    private static String newId() {
        byte[] random = new byte[12];
        ThreadLocalRandom.current().nextBytes(random);
        return "call_" + HexFormat.of().formatHex(random);
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
