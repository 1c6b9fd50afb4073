package dev.moe4j.model.transformer;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.AttentionSpec;

/**
 * The rows one forward pass processes and how attention reaches their keys: whole sequences of equal length laid
 * end to end (training, scoring, parity checks), or new tokens of one sequence appended to a {@link KvCache}
 * (prompt processing and decoding). Both run through the same layer code; only {@link #attend} differs.
 */
final class Batch {
    private final int[] positions;
    private final int sequences;
    private final KvCache cache;
    private final int start;

    private Batch(int[] positions, int sequences, KvCache cache, int start) {
        this.positions = positions;
        this.sequences = sequences;
        this.cache = cache;
        this.start = start;
    }

    /** {@code count} sequences of {@code length} tokens each, every one starting at position 0. */
    static Batch sequences(int count, int length) {
        int[] positions = new int[count * length];
        for (int r = 0; r < positions.length; r++) {
            positions[r] = r % length;
        }
        return new Batch(positions, count, null, 0);
    }

    /** {@code tokens} new tokens at the next positions of {@code cache}. */
    static Batch cached(KvCache cache, int tokens) {
        int start = cache.position();
        int[] positions = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            positions[t] = start + t;
        }
        return new Batch(positions, 1, cache, start);
    }

    int[] positions() {
        return positions;
    }

    int rows() {
        return positions.length;
    }

    /** Tokens per sequence, what the MoE layer's sequence-wise losses group by. */
    int sequenceLength() {
        return positions.length / sequences;
    }

    /** One past the largest position of the batch (the rope table must reach it). */
    int positionLimit() {
        return cache == null ? sequenceLength() : start + positions.length;
    }

    /** Causal attention of q over k and v [rows, ·] of this batch, and over the cache's earlier positions. */
    Var attend(Graph g, int layer, Var q, Var k, Var v, AttentionSpec spec, Var sinks) {
        if (cache == null) {
            return g.attention(q, k, v, sequences, spec, sinks);
        }
        cache.write(layer, start, k.value(), v.value());
        Tensor keys = cache.keys(layer), values = cache.values(layer);
        return g.attentionWithCache(q, keys, values, start, spec, sinks);
    }
}
