package dev.moe4j.model.transformer;

import dev.moe4j.core.PagedRows;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.moe.router.PolicyRows;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.List;

/**
 * The rows one forward pass processes and how attention reaches their keys: whole sequences of equal length laid
 * end to end (training, scoring, parity checks), or new tokens of one or more sequences, each appended to its own
 * {@link KvCache} (prompt processing, decoding, and the batched decoding of several sequences at once, whose rows go
 * through every matrix and expert together). They all run through the same layer code; only {@link #attend} differs.
 */
final class Batch {
    private final int[] positions;
    private final int sequences;
    private final List<KvCache> caches;
    /** Per cached sequence: its first new position, and the first of its rows (one more entry: the row count). */
    private final int[] starts;
    private final int[] rowStarts;
    /** The routing policy of each run of rows (rows policyStarts[i] .. policyStarts[i+1]); null when all trained. */
    private final List<RoutingPolicy> policies;
    private final int[] policyStarts;

    private Batch(int[] positions, int sequences, List<KvCache> caches, int[] starts, int[] rowStarts,
                  List<RoutingPolicy> policies, int[] policyStarts) {
        this.positions = positions;
        this.sequences = sequences;
        this.caches = caches;
        this.starts = starts;
        this.rowStarts = rowStarts;
        boolean trained = policies.stream().allMatch(RoutingPolicy::isTrained);
        this.policies = trained ? null : policies;
        this.policyStarts = trained ? null : policyStarts;
    }

    /** {@code count} sequences of {@code length} tokens each, every one starting at position 0, routed by {@code policy}. */
    static Batch sequences(int count, int length, RoutingPolicy policy) {
        int[] positions = new int[count * length];
        for (int r = 0; r < positions.length; r++) {
            positions[r] = r % length;
        }
        return new Batch(positions, count, List.of(), null, null, List.of(policy), new int[] {0, positions.length});
    }

    /** {@code tokens} new tokens at the next positions of {@code cache}. */
    static Batch cached(KvCache cache, int tokens) {
        return cached(List.of(cache), new int[] {tokens});
    }

    /** {@code tokens[i]} new tokens at the next positions of {@code caches.get(i)}, the sequences' rows in order. */
    static Batch cached(List<KvCache> caches, int[] tokens) {
        int n = caches.size();
        int[] starts = new int[n], rowStarts = new int[n + 1];
        for (int i = 0; i < n; i++) {
            starts[i] = caches.get(i).position();
            rowStarts[i + 1] = rowStarts[i] + tokens[i];
        }
        int[] positions = new int[rowStarts[n]];
        for (int i = 0; i < n; i++) {
            for (int t = 0; t < tokens[i]; t++) {
                positions[rowStarts[i] + t] = starts[i] + t;
            }
        }
        return new Batch(positions, n, new ArrayList<>(caches), starts, rowStarts,
                caches.stream().map(KvCache::routing).toList(), rowStarts);
    }

    /** The routing policies of this batch's rows in decoder layer {@code layer}, or null when every row routes as trained. */
    PolicyRows policies(int layer) {
        return policies == null ? null : new PolicyRows(layer, policies, policyStarts);
    }

    int[] positions() {
        return positions;
    }

    int rows() {
        return positions.length;
    }

    /**
     * Tokens per sequence, what the MoE layer's sequence-wise losses group by. Sequences fed to caches together may
     * differ in length; their pass is inference, which has no such losses, so it counts as one group.
     */
    int sequenceLength() {
        return caches.size() > 1 ? positions.length : positions.length / sequences;
    }

    /** One past the largest position of the batch (the rope table must reach it). */
    int positionLimit() {
        if (caches.isEmpty()) {
            return sequenceLength();
        }
        int limit = 0;
        for (int i = 0; i < starts.length; i++) {
            limit = Math.max(limit, starts[i] + rowStarts[i + 1] - rowStarts[i]);
        }
        return limit;
    }

    /** The last row of each sequence fed to a cache: the rows whose logits decoding needs. */
    int[] lastRows() {
        if (caches.isEmpty()) {
            return new int[] {positions.length - 1};
        }
        int[] last = new int[starts.length];
        for (int i = 0; i < last.length; i++) {
            last[i] = rowStarts[i + 1] - 1;
        }
        return last;
    }

    /** Causal attention of q over k and v [rows, ·] of this batch, and over each cache's earlier positions. */
    Var attend(Graph g, int layer, Var q, Var k, Var v, AttentionSpec spec, Var sinks) {
        if (caches.isEmpty()) {
            return g.attention(q, k, v, sequences, spec, sinks);
        }
        var keys = new ArrayList<PagedRows>(caches.size());
        var values = new ArrayList<PagedRows>(caches.size());
        for (int i = 0; i < caches.size(); i++) {
            KvCache cache = caches.get(i);
            int from = rowStarts[i], to = rowStarts[i + 1], visible = starts[i] + to - from;
            cache.write(layer, starts[i], k.value().slice(from, to), v.value().slice(from, to));
            keys.add(cache.keys(layer, visible));
            values.add(cache.values(layer, visible));
        }
        return g.attentionWithCaches(q, keys, values, starts, rowStarts, spec, sinks);
    }
}
