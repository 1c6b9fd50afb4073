package dev.moe4j.model.transformer;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.InferenceState;

import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.router.RoutingPolicy;

/**
 * The keys and values every layer has computed for one sequence, so that each new token attends to them
 * without recomputing them: [capacity, kvHeads·headDim] keys and [capacity, kvHeads·valueHeadDim] values per
 * layer, on the model's device in its activation dtype (F32 on the CPU, BF16 on a GPU). Latent attention caches its per-head keys and values expanded (simple, and exact; the latent-only cache
 * that absorbs kv_b into the queries would be 20-60 times smaller and is not written yet).
 */
public final class KvCache implements InferenceState {
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int capacity;
    private int position;
    private RoutingPolicy routing = RoutingPolicy.TRAINED;

    KvCache(Backend backend, int layers, int capacity, int keyWidth, int valueWidth) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("a KV cache needs room for at least one position, got " + capacity);
        }
        this.capacity = capacity;
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        // The cache lives as long as its sequence, not as long as the pass that happens to create it.
        MemoryScope.persistent(() -> {
            for (int l = 0; l < layers; l++) {
                keys[l] = backend.activations(capacity, keyWidth);
                values[l] = backend.activations(capacity, valueWidth);
            }
            return null;
        });
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
    public RoutingPolicy routing() {
        return routing;
    }

    @Override
    public void routing(RoutingPolicy policy) {
        if (position != 0 && !policy.equals(routing)) {
            throw new IllegalStateException("a cache of " + position + " positions computed with " + routing
                    + " cannot go on with " + policy + "; rewind it to 0 first");
        }
        this.routing = policy;
    }

    @Override
    public void rewind(int position) {
        if (position < 0 || position > this.position) {
            throw new IllegalArgumentException("cannot rewind a cache of " + this.position + " positions to "
                    + position);
        }
        this.position = position;
    }

    @Override
    public void release() {
        for (int l = 0; l < keys.length; l++) {
            keys[l].device().free(keys[l]);
            values[l].device().free(values[l]);
        }
    }

    @Override
    public KvCache grown(int capacity) {
        if (capacity < position) {
            throw new IllegalArgumentException("a cache of " + capacity + " positions cannot hold the " + position
                    + " of this one");
        }
        keys[0].device().attach();
        var bigger = new KvCache(Backend.of(keys[0]), keys.length, capacity, keys[0].cols(), values[0].cols());
        if (position > 0) {
            for (int l = 0; l < keys.length; l++) {
                bigger.write(l, 0, keys[l].slice(0, position), values[l].slice(0, position));
            }
        }
        bigger.position = position;
        bigger.routing = routing;
        return bigger;
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
        Backend.of(rows, cache).copy(cache.slice(start, start + rows.rows()), rows);
    }

    /** Marks {@code count} more positions as filled, after every layer wrote them. */
    void advance(int count) {
        position += count;
    }
}
