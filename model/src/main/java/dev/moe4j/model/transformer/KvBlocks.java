package dev.moe4j.model.transformer;

import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The KV cache memory of one model, in blocks of {@link #BLOCK} positions (every layer's keys and values of those
 * positions) that the sequences' {@link KvCache}s hold by reference (vLLM's paged KV cache): a sequence takes
 * blocks as it fills them and gives them back when it ends, and sequences that begin alike hold the same blocks
 * for their common beginning.
 *
 * <p><b>Prefix cache.</b> When enabled ({@link #cachePrefixes}), every full block a sequence computed is entered
 * under its tokens, the blocks before it and the routing policy, and stays after its sequences end, until the
 * budget of unreferenced cached blocks is spent (least recently used first). A sequence starting with the same
 * tokens then takes those blocks instead of computing them (a system prompt is computed once across requests).
 * Only a model whose routing gives each token's result alone may cache prefixes; the model says so.
 *
 * <p><b>Where blocks lie.</b> In host memory, blocks come from slabs of several blocks each, one at a time as
 * sequences fill them; attention reads a sequence's blocks where they lie ({@link PagedRows}). On a GPU, whose
 * attention kernel wants one matrix, a sequence takes all its blocks at once as one run (a slab of its own) and
 * does not share them; prefix caching is for host memory.
 *
 * <p>Thread-safe: the scheduler's thread fills blocks while a server's threads give back sequences' caches.
 */
final class KvBlocks {
    /** Positions per block: vLLM's default; small enough that a shared prefix loses at most 15 positions. */
    static final int BLOCK = 16;
    /** Blocks per slab in host memory grow with use, between these. */
    private static final int MIN_SLAB = 4, MAX_SLAB = 256;

    private final Backend backend;
    private final int layers;
    private final int keyWidth;
    private final int valueWidth;
    private final boolean paged;
    private final List<Slab> slabs = new ArrayList<>();
    private final Map<PrefixKey, Block> prefixes = new HashMap<>();
    /** Cached blocks no sequence holds, least recently released first: what the prefix cache may drop. */
    private final LinkedHashSet<Block> unreferenced = new LinkedHashSet<>();
    private long nextContent = 1;
    private int cacheLimit;
    private boolean prefixesAllowed;
    private int held;

    KvBlocks(Backend backend, int layers, int keyWidth, int valueWidth) {
        this.backend = backend;
        this.layers = layers;
        this.keyWidth = keyWidth;
        this.valueWidth = valueWidth;
        this.paged = backend.device().isHost();
    }

    /** One block: where its rows lie, who holds it, and what it holds once entered in the prefix cache. */
    static final class Block {
        final Slab slab;
        final int index;
        int references;
        PrefixKey key;
        /** Names this block's content for the blocks that follow it (0: not cached). */
        long content;

        Block(Slab slab, int index) {
            this.slab = slab;
            this.index = index;
        }

        int firstRow() {
            return index * BLOCK;
        }

        /** Whether the block follows {@code previous} in memory, so that both read as one matrix. */
        boolean follows(Block previous) {
            return previous.slab == slab && previous.index + 1 == index;
        }
    }

    /** Keys and values of every layer for a run of blocks: [blocks·BLOCK, width] per layer. */
    final class Slab {
        final Tensor[] keys = new Tensor[layers];
        final Tensor[] values = new Tensor[layers];
        final Block[] blocks;
        final ArrayDeque<Block> free = new ArrayDeque<>();
        /** Blocks not free: held by sequences, or cached for later ones. */
        int inUse;

        Slab(int count) {
            blocks = new Block[count];
            backend.device().attach(); // a GPU's memory is taken in its context, whichever thread asks
            // the memory lives as long as its blocks are held, not as long as the pass that asks for it
            MemoryScope.persistent(() -> {
                for (int l = 0; l < layers; l++) {
                    keys[l] = backend.activations(count * BLOCK, keyWidth);
                    values[l] = backend.activations(count * BLOCK, valueWidth);
                }
                return null;
            });
            for (int i = 0; i < count; i++) {
                blocks[i] = new Block(this, i);
                free.add(blocks[i]);
            }
        }

        void release() {
            backend.device().attach();
            for (int l = 0; l < layers; l++) {
                keys[l].device().free(keys[l]);
                values[l].device().free(values[l]);
            }
        }
    }

    /** A block's content as the prefix cache knows it: the content before it, its tokens and their routing. */
    record PrefixKey(long before, RoutingPolicy routing, int[] tokens) {
        @Override
        public boolean equals(Object o) {
            return o instanceof PrefixKey k && k.before == before && k.routing.equals(routing)
                    && Arrays.equals(k.tokens, tokens);
        }

        @Override
        public int hashCode() {
            return Objects.hash(before, routing, Arrays.hashCode(tokens));
        }
    }

    /** Whether sequences hold blocks where they lie (host memory) rather than one run each (a GPU). */
    boolean paged() {
        return paged;
    }

    /**
     * Keeps full blocks for later sequences that begin alike, up to {@code maxBlocks} blocks no sequence holds
     * (0 turns the cache off and drops what it kept). For host memory only, and only where the model routes each
     * token alone.
     */
    synchronized void cachePrefixes(int maxBlocks) {
        if (maxBlocks < 0) {
            throw new IllegalArgumentException("a prefix cache of " + maxBlocks + " blocks");
        }
        cacheLimit = paged && prefixesAllowed ? maxBlocks : 0;
        trimCache();
    }

    /** Whether the model's outputs allow prefix caching (set once by the model that owns the blocks). */
    synchronized void allowPrefixes(boolean allowed) {
        prefixesAllowed = allowed;
        if (!allowed) {
            cachePrefixes(0);
        }
    }

    synchronized boolean cachingPrefixes() {
        return cacheLimit > 0;
    }

    /** A free block, from a new slab if none is free (host memory). */
    synchronized Block take() {
        for (Slab s : slabs) {
            if (!s.free.isEmpty()) {
                return hold(s.free.poll());
            }
        }
        int size = Math.clamp(held + unreferenced.size(), MIN_SLAB, MAX_SLAB);
        Slab s = new Slab(size);
        slabs.add(s);
        return hold(s.free.poll());
    }

    /** {@code count} blocks that follow one another in memory: a slab of their own (a GPU's sequence). */
    synchronized Block[] takeRun(int count) {
        Slab s = new Slab(count);
        slabs.add(s);
        Block[] run = new Block[count];
        for (int i = 0; i < count; i++) {
            run[i] = hold(s.free.poll());
        }
        return run;
    }

    private Block hold(Block b) {
        b.references = 1;
        b.slab.inUse++;
        held++;
        return b;
    }

    /** Another holder of a block (a sequence that shares it, or takes it from the prefix cache). */
    synchronized void retain(Block b) {
        if (b.references == 0) {
            unreferenced.remove(b);
            held++;
        }
        b.references++;
    }

    /** A holder gives a block back: a cached block stays for later sequences, others go free. */
    synchronized void release(Block b) {
        if (b.references <= 0) {
            throw new IllegalStateException("a KV block released more often than held");
        }
        if (--b.references > 0) {
            return;
        }
        held--;
        if (b.content != 0 && cacheLimit > 0) {
            unreferenced.add(b);
            trimCache();
        } else {
            forget(b);
            free(b);
        }
    }

    /** Whether a holder may write into the block: it is the only one and the block is not a cached prefix. */
    synchronized boolean writable(Block b) {
        return b.references == 1 && b.content == 0;
    }

    /**
     * Enters a full block of {@code tokens} (BLOCK of them) under the block before it ({@code before}, null for a
     * sequence's first) and {@code routing}; returns false when the cache is off, the block before is not cached,
     * or the same content is cached already under another block.
     */
    synchronized boolean enter(Block b, Block before, RoutingPolicy routing, int[] tokens) {
        if (cacheLimit == 0 || b.content != 0 || before != null && before.content == 0) {
            return false;
        }
        var key = new PrefixKey(before == null ? 0 : before.content, routing, tokens);
        if (prefixes.containsKey(key)) {
            return false;
        }
        prefixes.put(key, b);
        b.key = key;
        b.content = nextContent++;
        return true;
    }

    /**
     * The cached blocks that hold the beginning of {@code tokens} under {@code routing}, whole blocks only and at
     * most {@code most} positions, each retained for the caller.
     */
    synchronized List<Block> lookUp(int[] tokens, int most, RoutingPolicy routing) {
        var found = new ArrayList<Block>();
        long before = 0;
        for (int end = BLOCK; cacheLimit > 0 && end <= Math.min(most, tokens.length); end += BLOCK) {
            Block b = prefixes.get(new PrefixKey(before, routing, Arrays.copyOfRange(tokens, end - BLOCK, end)));
            if (b == null) {
                break;
            }
            retain(b);
            found.add(b);
            before = b.content;
        }
        return found;
    }

    /** Copies the first {@code rows} positions of every layer from one block to another. */
    void copyRows(Block from, Block to, int rows) {
        backend.device().attach();
        for (int l = 0; l < layers; l++) {
            backend.copy(keys(to, l, 0, rows), keys(from, l, 0, rows));
            backend.copy(values(to, l, 0, rows), values(from, l, 0, rows));
        }
    }

    /** Rows [from, to) of a block's keys in {@code layer}. */
    Tensor keys(Block b, int layer, int from, int to) {
        return b.slab.keys[layer].slice(b.firstRow() + from, b.firstRow() + to);
    }

    Tensor values(Block b, int layer, int from, int to) {
        return b.slab.values[layer].slice(b.firstRow() + from, b.firstRow() + to);
    }

    /** Blocks held by sequences. */
    synchronized int heldBlocks() {
        return held;
    }

    /** Cached blocks no sequence holds (the prefix cache beyond the running sequences). */
    synchronized int cachedBlocks() {
        return unreferenced.size();
    }

    /** Bytes of KV memory the slabs take, held or not. */
    synchronized long allocatedBytes() {
        long rows = 0;
        for (Slab s : slabs) {
            rows += (long) s.blocks.length * BLOCK;
        }
        return rows * layers * backend.activationType().byteCount(keyWidth + valueWidth);
    }

    private void trimCache() {
        while (unreferenced.size() > cacheLimit) {
            Block oldest = unreferenced.removeFirst();
            forget(oldest);
            free(oldest);
        }
    }

    private void forget(Block b) {
        if (b.key != null) {
            prefixes.remove(b.key);
            b.key = null;
        }
        b.content = 0;
        unreferenced.remove(b);
    }

    /** Puts a block back among its slab's free ones, and gives back a slab none of whose blocks is in use. */
    private void free(Block b) {
        b.references = 0;
        Slab s = b.slab;
        s.free.add(b);
        if (--s.inUse == 0) {
            slabs.remove(s);
            s.release();
        }
    }
}
