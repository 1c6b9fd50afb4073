package dev.moe4j.server;

import dev.moe4j.model.generate.SequenceCache;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.List;

/**
 * The sequences of finished generations, kept with their KV caches so that a request whose prompt starts with one
 * of them (the next turn of a conversation, a shared system prompt) is fed only from where they differ: each
 * request takes the idle cache sharing the longest prefix with its prompt, or a fresh one, and gives it back when
 * its generation ends. At most {@code slots} idle caches are kept, the least recently used going first; a cache is
 * used by one generation at a time.
 */
final class CachePool {
    private final int slots;
    private final List<SequenceCache> idle = new ArrayList<>();

    CachePool(int slots) {
        this.slots = slots;
    }

    /** The idle cache that shares the longest prefix with {@code prompt}, or a new one when none shares any. */
    synchronized SequenceCache acquire(int[] prompt) {
        return acquire(prompt, RoutingPolicy.TRAINED);
    }

    /**
     * The idle cache computed with {@code routing} that shares the longest prefix with {@code prompt} (a cache of
     * another routing policy holds keys and values the request cannot use), or a new one when none does.
     */
    synchronized SequenceCache acquire(int[] prompt, RoutingPolicy routing) {
        SequenceCache best = null;
        int longest = 0;
        for (SequenceCache c : idle) {
            int shared = c.routing().equals(routing) ? SequenceCache.commonPrefix(c.ids(), prompt) : 0;
            if (shared > longest) {
                best = c;
                longest = shared;
            }
        }
        if (best == null) {
            return new SequenceCache();
        }
        idle.remove(best);
        return best;
    }

    /** Keeps {@code cache} for later requests, releasing the least recently used beyond the pool's slots. */
    synchronized void release(SequenceCache cache) {
        idle.add(cache);
        while (idle.size() > slots) {
            idle.removeFirst().release();
        }
    }

    /** Releases every idle cache's memory. */
    synchronized void clear() {
        idle.forEach(SequenceCache::release);
        idle.clear();
    }
}
