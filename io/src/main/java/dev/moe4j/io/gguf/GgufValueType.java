package dev.moe4j.io.gguf;

import java.util.Optional;

/** The types of GGUF metadata values, under the ids the format stores before each value. */
public enum GgufValueType {
    UINT8(0, 1), INT8(1, 1), UINT16(2, 2), INT16(3, 2), UINT32(4, 4), INT32(5, 4), FLOAT32(6, 4), BOOL(7, 1),
    STRING(8, 8), ARRAY(9, 12), UINT64(10, 8), INT64(11, 8), FLOAT64(12, 8);

    private final int id;
    private final int minimumBytes;

    GgufValueType(int id, int minimumBytes) {
        this.id = id;
        this.minimumBytes = minimumBytes;
    }

    public int id() {
        return id;
    }

    /**
     * The fewest bytes a value of this type takes in a file (a string's length field, an array's element type and
     * count), so that a reader can refuse a count that the rest of the file cannot hold before allocating for it.
     */
    int minimumBytes() {
        return minimumBytes;
    }

    public static Optional<GgufValueType> byId(long id) {
        for (GgufValueType t : values()) {
            if (t.id == id) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** Whether values of this type are integers (stored in a {@code long} by {@link GgufValue}). */
    public boolean isInteger() {
        return switch (this) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
            default -> false;
        };
    }
}
