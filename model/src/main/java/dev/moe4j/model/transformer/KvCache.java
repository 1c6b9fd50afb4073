package dev.moe4j.model.transformer;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.InferenceState;

import java.lang.foreign.MemorySegment;

/**
 * The keys and values every layer has computed for one sequence, so that each new token attends to them
 * without recomputing them: F32 [capacity, kvHeads·headDim] keys and [capacity, kvHeads·valueHeadDim] values per
 * layer. Latent attention caches its per-head keys and values expanded (simple, and exact; the latent-only cache
 * that absorbs kv_b into the queries would be 20-60 times smaller and is not written yet).
 */
public final class KvCache implements InferenceState {
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int capacity;
    private int position;

    KvCache(int layers, int capacity, int keyWidth, int valueWidth) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("a KV cache needs room for at least one position, got " + capacity);
        }
        this.capacity = capacity;
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        for (int l = 0; l < layers; l++) {
            keys[l] = Tensor.zeros(capacity, keyWidth);
            values[l] = Tensor.zeros(capacity, valueWidth);
        }
    }

    @Override
    public int position() {
        return position;
    }

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public void reset() {
        position = 0;
    }

    /** The keys of a layer, [capacity, width]; rows [0, position) hold values. */
    Tensor keys(int layer) {
        return keys[layer];
    }

    Tensor values(int layer) {
        return values[layer];
    }

    /** Stores the keys and values of rows at positions start.. of a layer. */
    void write(int layer, int start, Tensor k, Tensor v) {
        copyRows(k, keys[layer], start);
        copyRows(v, values[layer], start);
    }

    private static void copyRows(Tensor rows, Tensor cache, int start) {
        long rowBytes = (long) cache.cols() * 4;
        MemorySegment.copy(rows.segment(), 0, cache.segment(), start * rowBytes, rows.rows() * rowBytes);
    }

    /** Marks {@code count} more positions as filled, after every layer wrote them. */
    void advance(int count) {
        position += count;
    }
}
