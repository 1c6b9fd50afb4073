package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * Typed reads of a GGUF file's metadata for a model loader: a key that is missing where it is required, or holds
 * another type than the one its meaning needs, is one {@link BadInputException} naming the file and the key.
 */
public final class GgufFields {
    private final Path file;
    private final GgufMetadata metadata;

    public GgufFields(Path file, GgufMetadata metadata) {
        this.file = file;
        this.metadata = metadata;
    }

    public Path file() {
        return file;
    }

    public boolean has(String key) {
        return metadata.get(key).isPresent();
    }

    /** An error about {@code key}: "FILE: metadata 'KEY' WHAT". */
    public BadInputException error(String key, String what) {
        return new BadInputException(file + ": metadata " + BadInputException.quote(key) + " " + what);
    }

    /** A required integer, refused when missing or below {@code min}; {@code need} says who needs it. */
    public long requiredInteger(String key, long min, String need) {
        long v = integer(key).orElseThrow(() -> new BadInputException(file + ": missing metadata '" + key + "', which "
                + need + " needs"));
        return atLeast(key, v, min);
    }

    /** An optional integer (of any GGUF integer type). */
    public OptionalLong integer(String key) {
        Optional<GgufValue> v = metadata.get(key);
        if (v.isEmpty()) {
            return OptionalLong.empty();
        }
        if (!isInteger(v.get().type())) {
            throw error(key, "must be one integer, got " + describe(v.get()));
        }
        long x = v.get().longValue();
        if (v.get().type() == GgufValueType.UINT64 && x < 0) {
            throw error(key, "is " + Long.toUnsignedString(x) + ", which is too large");
        }
        return OptionalLong.of(x);
    }

    /** An optional integer, refused below {@code min}. */
    public OptionalLong integer(String key, long min) {
        OptionalLong v = integer(key);
        v.ifPresent(x -> atLeast(key, x, min));
        return v;
    }

    /** An optional number: a float (a FLOAT32 as its shortest decimal), or an integer read as one. */
    public OptionalDouble number(String key) {
        Optional<GgufValue> v = metadata.get(key);
        if (v.isEmpty()) {
            return OptionalDouble.empty();
        }
        GgufValueType t = v.get().type();
        if (t == GgufValueType.FLOAT32 || t == GgufValueType.FLOAT64) {
            // A FLOAT32 as its shortest decimal (1e-6, not 9.99999997e-7): what the writer meant, the same float.
            double d = t == GgufValueType.FLOAT32 ? Double.parseDouble(Float.toString((float) v.get().doubleValue()))
                    : v.get().doubleValue();
            if (!Double.isFinite(d)) {
                throw error(key, "must be a finite number, got " + d);
            }
            return OptionalDouble.of(d);
        }
        if (isInteger(t)) {
            return OptionalDouble.of(v.get().longValue());
        }
        throw error(key, "must be a number, got " + describe(v.get()));
    }

    public Optional<String> string(String key) {
        return metadata.get(key).map(v -> {
            if (v.type() != GgufValueType.STRING) {
                throw error(key, "must be a string, got " + describe(v));
            }
            return v.stringValue();
        });
    }

    public Optional<Boolean> bool(String key) {
        return metadata.get(key).map(v -> {
            if (v.type() != GgufValueType.BOOL) {
                throw error(key, "must be a bool, got " + describe(v));
            }
            return v.booleanValue();
        });
    }

    /** An optional array of strings. */
    public Optional<List<String>> strings(String key) {
        return array(key, "strings", GgufValueType.STRING).map(e -> {
            var out = new ArrayList<String>(e.size());
            for (Object o : e) {
                out.add((String) o);
            }
            return out;
        });
    }

    /** An optional array of integers (of any integer type), each within an int. */
    public Optional<int[]> ints(String key) {
        Optional<GgufValue> v = metadata.get(key);
        if (v.isEmpty()) {
            return Optional.empty();
        }
        if (v.get().type() != GgufValueType.ARRAY || !isInteger(v.get().elementType())) {
            throw error(key, "must be an array of integers, got " + describe(v.get()));
        }
        List<?> e = v.get().elements();
        int[] out = new int[e.size()];
        for (int i = 0; i < out.length; i++) {
            long x = (Long) e.get(i);
            if (x < Integer.MIN_VALUE || x > Integer.MAX_VALUE) {
                throw error(key, "element " + i + " is " + x + ", outside the range of an int");
            }
            out[i] = (int) x;
        }
        return Optional.of(out);
    }

    /** An optional array of FLOAT32 values. */
    public Optional<float[]> floats(String key) {
        return array(key, "FLOAT32 values", GgufValueType.FLOAT32).map(e -> {
            float[] out = new float[e.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = (Float) e.get(i);
            }
            return out;
        });
    }

    private Optional<List<?>> array(String key, String what, GgufValueType elementType) {
        return metadata.get(key).map(v -> {
            if (v.type() != GgufValueType.ARRAY || v.elementType() != elementType) {
                throw error(key, "must be an array of " + what + ", got " + describe(v));
            }
            return v.elements();
        });
    }

    private long atLeast(String key, long v, long min) {
        if (v < min) {
            throw error(key, "is " + v + "; expected at least " + min);
        }
        return v;
    }

    private static boolean isInteger(GgufValueType t) {
        return t != null && t.isInteger();
    }

    private static String describe(GgufValue v) {
        return v.type() == GgufValueType.ARRAY ? "an array of " + v.elements().size() + " " + v.elementType()
                : "a " + v.type();
    }
}
