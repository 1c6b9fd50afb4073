package dev.moe4j.io.gguf;

import dev.moe4j.core.Tensor;

/**
 * A run of a GGUF tensor's elements and where they come from: a host tensor (a memory-mapped checkpoint's, say),
 * or values computed only when the writer reaches them, so that a model that exists nowhere else (random weights
 * for benchmarks) is written in bounded memory whatever its size.
 */
public sealed interface GgufPart {
    /** Elements in this run. */
    long size();

    /** A host tensor's elements (F32, BF16, F16 or a block type GGUF stores), copied or converted as written. */
    record Stored(Tensor tensor) implements GgufPart {
        @Override
        public long size() {
            return tensor.size();
        }
    }

    /** Elements {@code [start, start + size)} of {@code values}, computed as they are written. */
    record Computed(Values values, long start, long size) implements GgufPart {
        public Computed {
            if (start < 0 || size < 0) {
                throw new IllegalArgumentException("a computed part of " + size + " elements from " + start);
            }
        }
    }

    /**
     * A sequence of values by index. The writer asks for several ranges at once from different threads (it converts
     * chunks in parallel), so an implementation computes each value from its index alone.
     */
    @FunctionalInterface
    interface Values {
        /** Writes the values at {@code index .. index + n - 1} into {@code dst[0 .. n - 1]}. */
        void fill(long index, float[] dst, int n);
    }

    /**
     * Values that repeat a fixed set of tiles, runs of {@link #TILE} values starting at a multiple of it (random
     * weights made quickly). The writer encodes each distinct tile once per block type and copies its bytes
     * wherever it recurs, since quantising costs a hundred times what computing a value does; a tile is whole blocks
     * of every block type, so its encoding does not depend on where it lies.
     */
    interface Tiled extends Values {
        int TILE = 256;

        /** The number of distinct tiles. */
        int tiles();

        /** The tile holding values {@code index .. index + TILE - 1}, {@code index} a multiple of {@link #TILE}. */
        int tileAt(long index);

        /** Tile {@code tile}'s values into {@code dst[0 .. TILE - 1]}: what {@link #fill} gives where it recurs. */
        void fillTile(int tile, float[] dst);

        /** Equal for values whose tiles are equal, so that their encodings are shared; with equals and hashCode. */
        Object tileSet();
    }
}
