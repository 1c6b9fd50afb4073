package dev.moe4j.model.transformer;

import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.transformer.KvBlocks.Block;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.moe4j.model.transformer.KvBlocks.BLOCK;

/**
 * The keys and values every layer has computed for one sequence, so that each new token attends to them without
 * recomputing them: a table of blocks of {@link KvBlocks#BLOCK} positions from the model's {@link KvBlocks}, taken
 * as the sequence fills them (in host memory; a GPU's sequence takes its blocks at once), each holding
 * [BLOCK, kvHeads·headDim] keys and [BLOCK, kvHeads·valueHeadDim] values per layer in the device's activation
 * dtype. Blocks may be shared with other sequences (a copy of this one, or a prefix found in the prefix cache);
 * a shared block is copied before it is written, so sharing never changes what a sequence reads. Latent attention
 * caches its per-head keys and values expanded (simple, and exact; the latent-only cache that absorbs kv_b into
 * the queries would be 20-60 times smaller and is not written yet).
 */
public final class KvCache implements InferenceState {
    private final KvBlocks pool;
    private final int capacity;
    private Block[] table = new Block[0];
    private int blocks;
    /** The ids fed at each position, which name full blocks in the prefix cache. */
    private int[] tokens = new int[0];
    /** Leading blocks already entered in (or taken from) the prefix cache. */
    private int entered;
    private int position;
    private RoutingPolicy routing = RoutingPolicy.TRAINED;

    KvCache(KvBlocks pool, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("a KV cache needs room for at least one position, got " + capacity);
        }
        this.pool = pool;
        this.capacity = capacity;
        if (!pool.paged()) {
            table = pool.takeRun(blocksFor(capacity));
            blocks = table.length;
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
        entered = Math.min(entered, position / BLOCK);
        if (pool.paged()) {
            // blocks wholly past the new end go back to the pool (a shared or cached one is copied, not written,
            // if the sequence grows into it again, so there is nothing to keep it for)
            int keep = blocksFor(position);
            for (int i = keep; i < blocks; i++) {
                pool.release(table[i]);
                table[i] = null;
            }
            blocks = Math.min(blocks, keep);
        }
    }

    @Override
    public void release() {
        for (int i = 0; i < blocks; i++) {
            pool.release(table[i]);
            table[i] = null;
        }
        blocks = 0;
        position = 0;
        entered = 0;
    }

    /**
     * A cache of {@code capacity} positions holding this one's: in host memory it shares this one's blocks (each
     * copied when either sequence writes to it); a GPU's gets its own run of blocks and a copy of the rows.
     */
    @Override
    public KvCache grown(int capacity) {
        if (capacity < position) {
            throw new IllegalArgumentException("a cache of " + capacity + " positions cannot hold the " + position
                    + " of this one");
        }
        var copy = new KvCache(pool, capacity);
        int used = blocksFor(position);
        if (pool.paged()) {
            copy.table = Arrays.copyOf(table, Math.max(used, 1));
            for (int i = 0; i < used; i++) {
                pool.retain(table[i]);
            }
            copy.blocks = used;
        } else {
            for (int i = 0; i < used; i++) {
                pool.copyRows(table[i], copy.table[i], Math.min(BLOCK, position - i * BLOCK));
            }
        }
        copy.tokens = Arrays.copyOf(tokens, position);
        copy.entered = entered;
        copy.position = position;
        copy.routing = routing;
        return copy;
    }

    @Override
    public int takeCachedPrefix(int[] prompt, int most) {
        if (position != 0 || !pool.cachingPrefixes() || !routing.routesEachTokenAlone()) {
            return 0;
        }
        List<Block> found = pool.lookUp(prompt, Math.min(most, capacity), routing);
        table = found.toArray(new Block[Math.max(found.size(), 1)]);
        blocks = found.size();
        entered = blocks;
        position = blocks * BLOCK;
        tokens = Arrays.copyOf(prompt, position);
        return position;
    }

    /**
     * Makes room to write {@code count} positions from the current one: blocks taken where there are none yet, and
     * a block shared with another sequence or the prefix cache replaced by a copy of its filled rows.
     */
    void prepareWrite(int count) {
        int end = position + count;
        if (end > capacity) {
            throw new IllegalArgumentException(count + " positions after " + position + " exceed the capacity "
                    + capacity);
        }
        int need = blocksFor(end);
        if (table.length < need) {
            table = Arrays.copyOf(table, Math.max(need, 2 * table.length));
        }
        for (int i = position / BLOCK; i < need; i++) {
            if (i >= blocks) {
                table[i] = pool.take();
                blocks = i + 1;
            } else if (!pool.writable(table[i])) {
                Block own = pool.take();
                pool.copyRows(table[i], own, Math.max(0, position - i * BLOCK));
                pool.release(table[i]);
                table[i] = own;
            }
        }
    }

    /**
     * A layer's keys and values as two whole matrices of {@link #capacity} rows where the cache's blocks are one run
     * of memory (a GPU's, taken at once), so that a step can write and read any position through them; null where
     * the blocks lie apart (paged host memory).
     */
    Tensor[] run(int layer) {
        if (pool.paged()) {
            return null;
        }
        PagedRows k = keys(layer, capacity), v = values(layer, capacity);
        if (k.pieces().size() != 1 || v.pieces().size() != 1) {
            return null;
        }
        return new Tensor[] {k.pieces().getFirst(), v.pieces().getFirst()};
    }

    /** The keys of a layer at positions [0, rows), in the pieces where they lie (one piece if contiguous). */
    PagedRows keys(int layer, int rows) {
        return rows(layer, rows, true);
    }

    PagedRows values(int layer, int rows) {
        return rows(layer, rows, false);
    }

    private PagedRows rows(int layer, int rows, boolean keys) {
        var pieces = new ArrayList<Tensor>();
        for (int i = 0; i * BLOCK < rows; ) {
            // blocks that follow one another in memory read as one piece
            int j = i + 1;
            while (j * BLOCK < rows && table[j].follows(table[j - 1])) {
                j++;
            }
            int last = Math.min(BLOCK, rows - (j - 1) * BLOCK);
            Block first = table[i];
            Tensor slab = keys ? first.slab.keys[layer] : first.slab.values[layer];
            pieces.add(slab.slice(first.firstRow(), first.firstRow() + (j - 1 - i) * BLOCK + last));
            i = j;
        }
        return new PagedRows(pieces, rows);
    }

    /** Stores the keys and values of rows at positions start.. of a layer, in blocks {@link #prepareWrite} made ready. */
    void write(int layer, int start, Tensor k, Tensor v) {
        int n = k.rows();
        for (int at = start; at < start + n; ) {
            Block b = table[at / BLOCK];
            int from = at % BLOCK, to = Math.min(BLOCK, from + start + n - at);
            var backend = Backend.of(k, b.slab.keys[layer]);
            backend.copy(pool.keys(b, layer, from, to), k.slice(at - start, at - start + to - from));
            backend.copy(pool.values(b, layer, from, to), v.slice(at - start, at - start + to - from));
            at += to - from;
        }
    }

    /** Marks {@code fed} as the next positions, filled by every layer, and enters the blocks they complete. */
    void advance(int[] fed) {
        if (tokens.length < position + fed.length) {
            tokens = Arrays.copyOf(tokens, Math.max(position + fed.length, 2 * tokens.length));
        }
        System.arraycopy(fed, 0, tokens, position, fed.length);
        position += fed.length;
        boolean cacheable = routing.routesEachTokenAlone();
        while (entered < position / BLOCK) {
            if (!cacheable || !pool.enter(table[entered], entered == 0 ? null : table[entered - 1], routing,
                    Arrays.copyOfRange(tokens, entered * BLOCK, (entered + 1) * BLOCK))) {
                // the cache is off, or cannot chain from here: the blocks after this one are not entered either
                entered = position / BLOCK;
                break;
            }
            entered++;
        }
    }

    private static int blocksFor(int positions) {
        return (positions + BLOCK - 1) / BLOCK;
    }
}
