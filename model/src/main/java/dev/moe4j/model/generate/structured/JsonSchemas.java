package dev.moe4j.model.generate.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Compiles a JSON schema into the {@link Shape}s that constrained decoding follows. It takes the subset that
 * OpenAI's structured outputs and vLLM's guided decoding take in practice: {@code type} (one or a list),
 * {@code properties}, {@code required}, {@code additionalProperties}, {@code items}, {@code minItems},
 * {@code maxItems}, {@code minLength}, {@code maxLength}, {@code enum}, {@code const}, {@code anyOf},
 * {@code oneOf} (as anyOf: the output satisfies at least one), and {@code $ref} into {@code $defs} or
 * {@code definitions} (recursion allowed). Keywords that would constrain values in ways this does not enforce
 * (pattern, format, minimum, ...) are refused by name rather than ignored; annotations (title, description, ...)
 * are ignored.
 *
 * <p>Properties are generated in the order the schema lists them, the optional ones skippable. Where an object
 * lists properties and says nothing of {@code additionalProperties}, no other keys are allowed (as xgrammar's strict
 * mode does: a model left free to add keys wanders); an object without properties takes any keys.
 */
public final class JsonSchemas {
    private static final Set<String> REFUSED = Set.of("pattern", "format", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "multipleOf", "allOf", "not", "if", "then", "else", "patternProperties",
            "propertyNames", "minProperties", "maxProperties", "uniqueItems", "contains", "minContains", "maxContains",
            "prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
            "additionalItems", "contentEncoding", "contentMediaType");

    private final String where;
    private final JsonNode root;
    private final Map<String, Shape> definitions = new HashMap<>();
    private final Set<String> compiling = new HashSet<>();

    private JsonSchemas(String where, JsonNode root) {
        this.where = where;
        this.root = root;
    }

    /**
     * The shape of values valid under {@code schema}; {@code where} names the field it came from in errors (e.g.
     * {@code response_format.json_schema.schema}).
     */
    public static Shape compile(JsonNode schema, String where) {
        return new JsonSchemas(where, schema).shape(schema, where);
    }

    /** Any JSON object ({@code response_format: {"type": "json_object"}}). */
    public static Shape anyObject() {
        return new Shape.Object(List.of(), new Shape.AnyValue());
    }

    private BadInputException bad(String at, String message) {
        return new BadInputException(at + ": " + message);
    }

    private Shape shape(JsonNode s, String at) {
        if (s.isBoolean()) {
            if (!s.asBoolean()) {
                throw bad(at, "the schema false allows no value at all");
            }
            return new Shape.AnyValue();
        }
        if (!(s instanceof ObjectNode o)) {
            throw bad(at, "expected a schema (an object or true), got " + BadInputException.oneLine(s.toString()));
        }
        for (var name : o.properties().stream().map(Map.Entry::getKey).toList()) {
            if (REFUSED.contains(name)) {
                throw bad(at + "." + name, "the keyword " + name + " is not supported by moe4j's constrained decoding"
                        + " (supported: type, properties, required, additionalProperties, items, minItems, maxItems,"
                        + " minLength, maxLength, enum, const, anyOf, oneOf, $ref)");
            }
        }
        if (o.has("$ref")) {
            return reference(o.get("$ref"), at + ".$ref");
        }
        if (o.has("const")) {
            return literal(o.get("const"));
        }
        if (o.has("enum")) {
            JsonNode values = o.get("enum");
            if (!values.isArray() || values.isEmpty()) {
                throw bad(at + ".enum", "expected a non-empty list of values");
            }
            var options = new ArrayList<Shape>();
            values.forEach(v -> options.add(literal(v)));
            return options.size() == 1 ? options.getFirst() : new Shape.AnyOf(options);
        }
        for (String alternatives : List.of("anyOf", "oneOf")) {
            if (o.has(alternatives)) {
                JsonNode list = o.get(alternatives);
                if (!list.isArray() || list.isEmpty()) {
                    throw bad(at + "." + alternatives, "expected a non-empty list of schemas");
                }
                var options = new ArrayList<Shape>();
                for (int i = 0; i < list.size(); i++) {
                    options.add(shape(list.get(i), at + "." + alternatives + "[" + i + "]"));
                }
                return options.size() == 1 ? options.getFirst() : new Shape.AnyOf(options);
            }
        }
        JsonNode type = o.get("type");
        if (type == null) {
            if (o.has("properties") || o.has("additionalProperties") || o.has("required")) {
                return typed("object", o, at);
            }
            if (o.has("items") || o.has("minItems") || o.has("maxItems")) {
                return typed("array", o, at);
            }
            if (o.has("minLength") || o.has("maxLength")) {
                return typed("string", o, at);
            }
            return new Shape.AnyValue();
        }
        if (type.isTextual()) {
            return typed(type.asText(), o, at);
        }
        if (type.isArray() && !type.isEmpty()) {
            var options = new ArrayList<Shape>();
            for (JsonNode t : type) {
                if (!t.isTextual()) {
                    throw bad(at + ".type", "expected a type name or a list of them");
                }
                options.add(typed(t.asText(), o, at));
            }
            return options.size() == 1 ? options.getFirst() : new Shape.AnyOf(options);
        }
        throw bad(at + ".type", "expected a type name or a list of them, got " + BadInputException.oneLine(type.toString()));
    }

    private Shape typed(String type, ObjectNode o, String at) {
        return switch (type) {
            case "string" -> new Shape.Text(count(o, "minLength", 0, at), count(o, "maxLength", Integer.MAX_VALUE, at));
            case "number" -> new Shape.Number(false);
            case "integer" -> new Shape.Number(true);
            case "boolean" -> new Shape.AnyOf(List.of(Shape.Literal.of("true"), Shape.Literal.of("false")));
            case "null" -> Shape.Literal.of("null");
            case "object" -> object(o, at);
            case "array" -> {
                Shape items = o.has("items") ? shape(o.get("items"), at + ".items") : new Shape.AnyValue();
                int min = count(o, "minItems", 0, at), max = count(o, "maxItems", Integer.MAX_VALUE, at);
                if (min > max) {
                    throw bad(at + ".minItems", "minItems " + min + " is above maxItems " + max);
                }
                yield new Shape.Array(items, min, max);
            }
            default -> throw bad(at + ".type", "unknown type " + BadInputException.quote(type) + " (expected string,"
                    + " number, integer, boolean, null, object or array)");
        };
    }

    private Shape object(ObjectNode o, String at) {
        var required = new HashSet<String>();
        JsonNode req = o.get("required");
        if (req != null) {
            if (!req.isArray()) {
                throw bad(at + ".required", "expected a list of property names");
            }
            req.forEach(r -> required.add(r.asText()));
        }
        var properties = new ArrayList<Shape.Property>();
        JsonNode props = o.get("properties");
        if (props != null) {
            if (!(props instanceof ObjectNode p)) {
                throw bad(at + ".properties", "expected an object of schemas");
            }
            for (var e : p.properties()) {
                properties.add(new Shape.Property(e.getKey(), shape(e.getValue(), at + ".properties." + e.getKey()),
                        required.contains(e.getKey())));
            }
        }
        for (String r : required) {
            if (properties.stream().noneMatch(p -> p.name().equals(r))) {
                throw bad(at + ".required", "the required property " + BadInputException.quote(r)
                        + " is not among the properties");
            }
        }
        JsonNode more = o.get("additionalProperties");
        Shape additional;
        if (more == null) {
            additional = properties.isEmpty() ? new Shape.AnyValue() : null;
        } else if (more.isBoolean()) {
            additional = more.asBoolean() ? new Shape.AnyValue() : null;
        } else {
            additional = shape(more, at + ".additionalProperties");
        }
        return new Shape.Object(properties, additional);
    }

    private int count(ObjectNode o, String name, int absent, String at) {
        JsonNode v = o.get(name);
        if (v == null) {
            return absent;
        }
        if (!v.canConvertToInt() || !(v.isIntegralNumber() || v.asDouble() == Math.rint(v.asDouble())) || v.asInt() < 0) {
            throw bad(at + "." + name, "expected a whole number of 0 or more, got " + BadInputException.oneLine(v.toString()));
        }
        return v.asInt();
    }

    private Shape literal(JsonNode value) {
        try {
            return Shape.Literal.of(Json.mapper().writeValueAsString(value));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e); // a parsed tree always writes
        }
    }

    private Shape reference(JsonNode ref, String at) {
        if (!ref.isTextual()) {
            throw bad(at, "expected a reference such as \"#/$defs/Name\"");
        }
        String path = ref.asText();
        if (definitions.containsKey(path) || compiling.contains(path)) {
            return new Shape.Reference(path, definitions);
        }
        JsonNode target = resolve(path, at);
        compiling.add(path);
        definitions.put(path, shape(target, at + "(" + path + ")"));
        compiling.remove(path);
        return new Shape.Reference(path, definitions);
    }

    private JsonNode resolve(String path, String at) {
        if (path.equals("#")) {
            return root;
        }
        if (!path.startsWith("#/")) {
            throw bad(at, "only references inside the schema (\"#/...\") are supported, got " + BadInputException.quote(path));
        }
        JsonNode node = root.at(path.substring(1));
        if (node.isMissingNode()) {
            throw bad(at, "the reference " + BadInputException.quote(path) + " names nothing in the schema");
        }
        return node;
    }
}
