package dev.moe4j.io.gguf;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * One GGUF metadata value: a number, a boolean, a string, or an array of one of those. Integers of every width are
 * held in a {@code long} (a UINT64 as its raw bits), FLOAT32 in a {@code Float}, FLOAT64 in a {@code Double}; an
 * array holds its elements in a list and names their type. The factories check ranges, so a value that exists can
 * be written.
 *
 * @param elementType the type of an array's elements; null for other values
 */
public record GgufValue(GgufValueType type, GgufValueType elementType, Object value) {
    public GgufValue {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(value, "value");
        if (type == GgufValueType.ARRAY) {
            if (elementType == null || elementType == GgufValueType.ARRAY) {
                throw new IllegalArgumentException("an array needs an element type other than ARRAY");
            }
            var elements = new ArrayList<Object>();
            for (Object e : (List<?>) value) {
                elements.add(checked(elementType, e));
            }
            value = List.copyOf(elements);
        } else {
            if (elementType != null) {
                throw new IllegalArgumentException(type + " has no element type");
            }
            value = checked(type, value);
        }
    }

    public static GgufValue uint32(long v) {
        return new GgufValue(GgufValueType.UINT32, null, v);
    }

    public static GgufValue int32(int v) {
        return new GgufValue(GgufValueType.INT32, null, (long) v);
    }

    public static GgufValue uint64(long v) {
        return new GgufValue(GgufValueType.UINT64, null, v);
    }

    public static GgufValue float32(float v) {
        return new GgufValue(GgufValueType.FLOAT32, null, v);
    }

    public static GgufValue bool(boolean v) {
        return new GgufValue(GgufValueType.BOOL, null, v);
    }

    public static GgufValue string(String v) {
        return new GgufValue(GgufValueType.STRING, null, v);
    }

    public static GgufValue strings(List<String> v) {
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.STRING, v);
    }

    public static GgufValue int32s(int... v) {
        var list = new ArrayList<Object>(v.length);
        for (int x : v) {
            list.add((long) x);
        }
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.INT32, list);
    }

    public static GgufValue float32s(float... v) {
        var list = new ArrayList<Object>(v.length);
        for (float x : v) {
            list.add(x);
        }
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.FLOAT32, list);
    }

    /** An integer value (of any integer type); a UINT64 comes back as its raw bits. */
    public long longValue() {
        if (!type.isInteger()) {
            throw new IllegalStateException("a " + type + " value is not an integer");
        }
        return (Long) value;
    }

    /** A FLOAT32 or FLOAT64 value. */
    public double doubleValue() {
        return switch (value) {
            case Float f -> f;
            case Double d -> d;
            default -> throw new IllegalStateException("a " + type + " value is not a float");
        };
    }

    public boolean booleanValue() {
        if (type != GgufValueType.BOOL) {
            throw new IllegalStateException("a " + type + " value is not a bool");
        }
        return (Boolean) value;
    }

    public String stringValue() {
        if (type != GgufValueType.STRING) {
            throw new IllegalStateException("a " + type + " value is not a string");
        }
        return (String) value;
    }

    /** The elements of an array, in the representation of their type. */
    public List<?> elements() {
        if (type != GgufValueType.ARRAY) {
            throw new IllegalStateException("a " + type + " value is not an array");
        }
        return (List<?>) value;
    }

    private static Object checked(GgufValueType type, Object v) {
        return switch (type) {
            case UINT8 -> range(type, v, 0, 0xFF);
            case INT8 -> range(type, v, Byte.MIN_VALUE, Byte.MAX_VALUE);
            case UINT16 -> range(type, v, 0, 0xFFFF);
            case INT16 -> range(type, v, Short.MIN_VALUE, Short.MAX_VALUE);
            case UINT32 -> range(type, v, 0, 0xFFFF_FFFFL);
            case INT32 -> range(type, v, Integer.MIN_VALUE, Integer.MAX_VALUE);
            case UINT64, INT64 -> range(type, v, Long.MIN_VALUE, Long.MAX_VALUE);
            case FLOAT32 -> as(type, v, Float.class);
            case FLOAT64 -> as(type, v, Double.class);
            case BOOL -> as(type, v, Boolean.class);
            case STRING -> as(type, v, String.class);
            case ARRAY -> throw new IllegalArgumentException("arrays of arrays are not supported");
        };
    }

    private static Long range(GgufValueType type, Object v, long min, long max) {
        long x = as(type, v, Long.class);
        if (x < min || x > max) {
            throw new IllegalArgumentException(x + " is out of the range of " + type);
        }
        return x;
    }

    private static <T> T as(GgufValueType type, Object v, Class<T> kind) {
        if (!kind.isInstance(v)) {
            throw new IllegalArgumentException("a " + type + " value must be a " + kind.getSimpleName() + ", got "
                    + (v == null ? "null" : v.getClass().getSimpleName()));
        }
        return kind.cast(v);
    }
}
