package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Typed access to the fields of one config.json object. A field that is absent takes the default the family's
 * transformers config class gives it; a field of the wrong type is an error naming the file and the field. An
 * explicit {@code null} means None, as it does for transformers.
 */
public final class ConfigFields {
    private final ObjectNode json;
    private final String source;
    private final String prefix;

    public ConfigFields(ObjectNode json, String source) {
        this(json, source, "");
    }

    private ConfigFields(ObjectNode json, String source, String prefix) {
        this.json = json;
        this.source = source;
        this.prefix = prefix;
    }

    /** The file the fields come from, for messages. */
    public String source() {
        return source;
    }

    /** How messages name a field of this object: nested objects' fields as "outer.inner". */
    public String qualified(String field) {
        return prefix + field;
    }

    public ObjectNode json() {
        return json;
    }

    public boolean has(String name) {
        return json.has(name);
    }

    /** Present and not null. */
    public boolean hasValue(String name) {
        return json.hasNonNull(name);
    }

    /** An error about a field, naming the file. */
    public BadInputException error(String field, String problem) {
        return new BadInputException(source + ": field '" + prefix + field + "' " + problem);
    }

    /** A positive integer that must be present: moe4j does not guess a model's size. */
    public int requiredPositiveInt(String name) {
        if (!hasValue(name)) {
            throw new BadInputException(source + ": missing required field '" + prefix + name + "'");
        }
        return positive(name, integer(name));
    }

    /** The first of {@code names} that is present (aliases from transformers' attribute_map), required. */
    public int requiredPositiveInt(String name, String alias) {
        return requiredPositiveInt(aliased(name, alias));
    }

    public int positiveIntOr(String name, int fallback) {
        return hasValue(name) ? positive(name, integer(name)) : fallback;
    }

    public int nonNegativeIntOr(String name, int fallback) {
        if (!hasValue(name)) {
            return fallback;
        }
        int value = integer(name);
        if (value < 0) {
            throw error(name, "must not be negative, got " + value);
        }
        return value;
    }

    /**
     * A size where 0 and null mean none (a sliding window, a low rank): absent gives {@code fallback} (empty: none),
     * a negative value is refused. None is returned as 0.
     */
    public int nonNegativeIntOrNone(String name, OptionalInt fallback) {
        OptionalInt value = optionalInt(name, fallback);
        if (value.isPresent() && value.getAsInt() < 0) {
            throw error(name, "must be 0 or more (0 or null: none), got " + value.getAsInt());
        }
        return value.orElse(0);
    }

    /** A positive finite number (an epsilon, a scale); absent gives {@code fallback}. */
    public double positiveDoubleOr(String name, double fallback) {
        double value = doubleOr(name, fallback);
        if (!(value > 0) || Double.isInfinite(value)) {
            throw error(name, "must be a positive number, got " + value);
        }
        return value;
    }

    /** An integer that may be absent (the default applies) or null (none). */
    public OptionalInt optionalInt(String name, OptionalInt fallback) {
        if (!has(name)) {
            return fallback;
        }
        return json.get(name).isNull() ? OptionalInt.empty() : OptionalInt.of(integer(name));
    }

    public double doubleOr(String name, double fallback) {
        if (!hasValue(name)) {
            return fallback;
        }
        JsonNode node = json.get(name);
        if (!node.isNumber()) {
            throw error(name, "must be a number, got " + node);
        }
        return node.asDouble();
    }

    /** A number that may be absent (the default applies) or null (none). */
    public OptionalDouble optionalDouble(String name, OptionalDouble fallback) {
        if (!has(name)) {
            return fallback;
        }
        return json.get(name).isNull() ? OptionalDouble.empty() : OptionalDouble.of(doubleOr(name, 0));
    }

    public boolean boolOr(String name, boolean fallback) {
        if (!hasValue(name)) {
            return fallback;
        }
        JsonNode node = json.get(name);
        if (!node.isBoolean()) {
            throw error(name, "must be true or false, got " + node);
        }
        return node.asBoolean();
    }

    public String stringOr(String name, String fallback) {
        if (!hasValue(name)) {
            return fallback;
        }
        JsonNode node = json.get(name);
        if (!node.isTextual()) {
            throw error(name, "must be a string, got " + node);
        }
        return node.asText();
    }

    /** A list of integers; absent or null gives {@code fallback}. */
    public List<Integer> intListOr(String name, List<Integer> fallback) {
        if (!hasValue(name)) {
            return fallback;
        }
        JsonNode node = json.get(name);
        if (!node.isArray()) {
            throw error(name, "must be a list of integers, got " + node);
        }
        var out = new ArrayList<Integer>();
        for (JsonNode item : node) {
            if (!item.isIntegralNumber() || !item.canConvertToInt()) {
                throw error(name, "must be a list of integers, got " + node);
            }
            out.add(item.asInt());
        }
        return out;
    }

    /** A list of strings, or empty when absent or null. */
    public Optional<List<String>> stringList(String name) {
        if (!hasValue(name)) {
            return Optional.empty();
        }
        JsonNode node = json.get(name);
        if (!node.isArray()) {
            throw error(name, "must be a list of strings, got " + node);
        }
        var out = new ArrayList<String>();
        for (JsonNode item : node) {
            if (!item.isTextual()) {
                throw error(name, "must be a list of strings, got " + node);
            }
            out.add(item.asText());
        }
        return Optional.of(out);
    }

    /** A nested object, or empty when absent or null. */
    public Optional<ConfigFields> object(String name) {
        if (!hasValue(name)) {
            return Optional.empty();
        }
        JsonNode node = json.get(name);
        if (!(node instanceof ObjectNode object)) {
            throw error(name, "must be an object, got " + node);
        }
        return Optional.of(new ConfigFields(object, source, prefix + name + "."));
    }

    /**
     * The name under which a field is present when transformers accepts two (its attribute_map); if both are
     * present they must agree.
     */
    public String aliased(String name, String alias) {
        if (hasValue(name) && hasValue(alias) && !json.get(name).equals(json.get(alias))) {
            throw new BadInputException(source + ": fields '" + prefix + name + "' (" + json.get(name) + ") and '"
                    + prefix + alias + "' (" + json.get(alias) + ") name the same setting with different values");
        }
        return hasValue(name) || !hasValue(alias) ? name : alias;
    }

    private int integer(String name) {
        JsonNode node = json.get(name);
        // transformers writes some integer fields as floats (e.g. 4096.0); a whole float is still an integer.
        if (node.isFloatingPointNumber() && node.asDouble() == Math.rint(node.asDouble())
                && Math.abs(node.asDouble()) <= Integer.MAX_VALUE) {
            return (int) node.asDouble();
        }
        if (!node.isIntegralNumber() || !node.canConvertToInt()) {
            throw error(name, "must be an integer, got " + describe(node));
        }
        return node.asInt();
    }

    private int positive(String name, int value) {
        if (value <= 0) {
            throw error(name, "must be positive, got " + value);
        }
        return value;
    }

    private static String describe(JsonNode node) {
        return node.isTextual() ? "the string " + node : node.toString();
    }
}
