package dev.moe4j.model.generate.structured;

import java.util.List;
import java.util.Map;

/**
 * What a piece of constrained output may be: a JSON value of a schema's kind, or raw text around it (a tool call's
 * markers). {@link JsonSchemas} compiles a JSON schema into shapes; {@link ByteMatcher} walks them byte by byte.
 */
public sealed interface Shape {
    /** Any JSON value. */
    record AnyValue() implements Shape {
    }

    /** A JSON string of {@code minLength} to {@code maxLength} characters (code points). */
    record Text(int minLength, int maxLength) implements Shape {
    }

    /** A JSON number; {@code integer} allows neither fraction nor exponent. */
    record Number(boolean integer) implements Shape {
    }

    /** A JSON literal (true, a const or an enum member, written compactly): exactly these bytes. */
    record Literal(int[] symbols) implements Shape {
        public static Literal of(String text) {
            return new Literal(Shape.symbols(text));
        }
    }

    /**
     * Raw text, outside JSON (a tool call's markers): exactly these symbols, with no whitespace before them. A
     * symbol at or above 256 stands for a special token that must appear as that token.
     */
    record Raw(int[] symbols) implements Shape {
        public static Raw of(String text) {
            return new Raw(Shape.symbols(text));
        }
    }

    /** The UTF-8 bytes of a text as symbols. */
    static int[] symbols(String text) {
        byte[] b = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int[] s = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            s[i] = b[i] & 0xFF;
        }
        return s;
    }

    /**
     * A JSON object whose declared properties appear in their order, each required one present; keys outside them
     * are allowed only where {@code additional} is not null (then their values take that shape).
     */
    record Object(List<Property> properties, Shape additional) implements Shape {
        public Object {
            properties = List.copyOf(properties);
        }
    }

    /** A declared property; {@code key} is its name as written between the quotes of compact JSON. */
    record Property(String name, Shape value, boolean required, byte[] key) {
        public Property(String name, Shape value, boolean required) {
            this(name, value, required, keyBytes(name));
        }

        private static byte[] keyBytes(String name) {
            try {
                String quoted = dev.moe4j.io.json.Json.mapper().writeValueAsString(name);
                return quoted.substring(1, quoted.length() - 1).getBytes(java.nio.charset.StandardCharsets.UTF_8);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException(e); // a string always writes
            }
        }
    }

    /** A JSON array of {@code minItems} to {@code maxItems} items of one shape. */
    record Array(Shape items, int minItems, int maxItems) implements Shape {
    }

    /** One of several shapes (anyOf, oneOf, enum, a list of types). */
    record AnyOf(List<Shape> options) implements Shape {
        public AnyOf {
            options = List.copyOf(options);
        }
    }

    /** Shapes one after another with nothing between them (raw text, a value, raw text). */
    record Sequence(List<Shape> parts) implements Shape {
        public Sequence {
            parts = List.copyOf(parts);
        }
    }

    /** A named definition ({@code $ref}), looked up when reached, so that a schema may refer to itself. */
    record Reference(String name, Map<String, Shape> definitions) implements Shape {
        Shape resolve() {
            Shape s = definitions.get(name);
            if (s == null) {
                throw new IllegalStateException("unresolved reference " + name);
            }
            return s;
        }

        @Override
        public String toString() {
            return "Reference[" + name + "]"; // the definitions may hold this reference: no recursive printing
        }

        @Override
        public boolean equals(java.lang.Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }
    }
}
