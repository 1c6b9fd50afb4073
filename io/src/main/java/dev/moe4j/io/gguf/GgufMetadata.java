package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The key/value metadata of a GGUF file, in file order. Keys are ASCII, at most 65535 bytes and unique, as the
 * format requires; {@code general.alignment}, when present, is a UINT32 power of two (the format's rule, and
 * ggml's: tensor data is padded to it).
 */
public final class GgufMetadata {
    /** The key of the alignment of tensor data. */
    public static final String ALIGNMENT = "general.alignment";
    /** The alignment a file has when it does not say. */
    public static final int DEFAULT_ALIGNMENT = 32;

    private final Map<String, GgufValue> entries;

    private GgufMetadata(Map<String, GgufValue> entries) {
        this.entries = Collections.unmodifiableMap(entries);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Every key and value, in file order. */
    public Map<String, GgufValue> entries() {
        return entries;
    }

    public Optional<GgufValue> get(String key) {
        return Optional.ofNullable(entries.get(key));
    }

    public int size() {
        return entries.size();
    }

    /** The alignment of tensor data: {@code general.alignment}, or 32 when the metadata does not set it. */
    public int alignment() {
        GgufValue v = entries.get(ALIGNMENT);
        return v == null ? DEFAULT_ALIGNMENT : (int) v.longValue();
    }

    /** Why a key or value cannot be in GGUF metadata, or empty when it can. */
    static Optional<String> problem(String key, GgufValue value) {
        if (key.isEmpty()) {
            return Optional.of("a metadata key is empty");
        }
        if (!StandardCharsets.US_ASCII.newEncoder().canEncode(key)) {
            return Optional.of("metadata key " + BadInputException.quote(key) + " is not ASCII");
        }
        if (key.length() > 0xFFFF) {
            return Optional.of("metadata key " + BadInputException.quote(key) + " is longer than 65535 bytes");
        }
        if (key.equals(ALIGNMENT)) {
            if (value.type() != GgufValueType.UINT32) {
                return Optional.of(ALIGNMENT + " must be a UINT32, got " + value.type());
            }
            long a = value.longValue();
            if (a == 0 || (a & (a - 1)) != 0 || a > 1 << 30) {
                return Optional.of(ALIGNMENT + " must be a power of two, got " + a);
            }
        }
        return Optional.empty();
    }

    public static final class Builder {
        private final Map<String, GgufValue> entries = new LinkedHashMap<>();

        private Builder() {
        }

        /** Adds a key; a key may be given once, so a converter cannot silently overwrite what it wrote before. */
        public Builder put(String key, GgufValue value) {
            problem(key, value).ifPresent(p -> {
                throw new IllegalArgumentException(p);
            });
            if (entries.putIfAbsent(key, value) != null) {
                throw new IllegalArgumentException("metadata key '" + key + "' is given twice");
            }
            return this;
        }

        public boolean contains(String key) {
            return entries.containsKey(key);
        }

        public GgufMetadata build() {
            return new GgufMetadata(new LinkedHashMap<>(entries));
        }
    }
}
