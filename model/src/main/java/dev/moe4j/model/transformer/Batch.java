package dev.moe4j.model.transformer;

import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
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
    /**
     * A decoding step's token ids and positions (one row per cache) as I32 tensors on the model's device, or null:
     * a recorded step reads them there at each replay, so none of its launches names a position.
     */
    private Tensor deviceIds, devicePositions;

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

    /**
     * This batch (one new token per cache, each cache one run of memory: {@link KvCache#run}) with its ids and
     * positions read from {@code ids} and {@code positions}, I32 [caches] on the model's device, by every operation
     * that uses them: the embedding, RoPE, the caches' writes and attention. The host's positions still name the
     * rows for observers. The rotary table covers every cache's capacity, so that it stays the same table from step
     * to step.
     */
    Batch readingFrom(Tensor ids, Tensor positions) {
        if (caches.isEmpty() || rowStarts[caches.size()] != caches.size()) {
            throw new IllegalArgumentException("a step reading its positions on the device feeds one token per cache");
        }
        deviceIds = ids;
        devicePositions = positions;
        return this;
    }

    /** The embedding of this batch's tokens: rows ids of the table. */
    Var embed(Graph g, Var table, int[] ids) {
        if (deviceIds == null) {
            return g.embedding(table, ids);
        }
        Backend b = Backend.of(table.value());
        Tensor y = b.empty(b.activationType(), ids.length, table.cols());
        b.embedding(y, table.value(), deviceIds);
        return g.result(y, table);
    }

    /** RoPE of x [rows, heads·headDim] at this batch's positions. */
    Var rope(Graph g, Var x, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        if (devicePositions == null) {
            return g.rope(x, positions, table, layout, headDim, rotaryDim);
        }
        Backend b = Backend.of(x.value());
        Tensor y = b.copyOf(x.value());
        b.rope(y, devicePositions, table, layout, headDim, rotaryDim);
        return g.result(y, x);
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
        if (devicePositions != null) {
            for (KvCache cache : caches) {
                limit = Math.max(limit, cache.capacity());
            }
            return limit;
        }
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
        if (devicePositions != null) {
            return attendAtDevicePositions(g, layer, q, k, v, spec, sinks);
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

    /** {@link #attend} of one row per cache, each written to and attending to its cache at its device position. */
    private Var attendAtDevicePositions(Graph g, int layer, Var q, Var k, Var v, AttentionSpec spec, Var sinks) {
        Tensor sinkValues = sinks == null ? null : sinks.value();
        Backend b = Backend.of(q.value());
        Tensor y = b.empty(b.activationType(), q.rows(), spec.heads() * spec.valueHeadDim());
        for (int i = 0; i < caches.size(); i++) {
            Tensor[] run = caches.get(i).run(layer);
            Tensor at = devicePositions.slice(i, i + 1);
            b.writeRowsAt(run[0], run[1], at, k.value().slice(i, i + 1), v.value().slice(i, i + 1));
            b.attentionAt(y.slice(i, i + 1), q.value().slice(i, i + 1), run[0], run[1], at, spec, sinkValues);
        }
        return g.result(y, q, k, v);
    }
}
