package dev.moe4j.server;

import dev.moe4j.model.generate.SequenceCache;

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
        SequenceCache best = null;
        int longest = 0;
        for (SequenceCache c : idle) {
            int shared = SequenceCache.commonPrefix(c.ids(), prompt);
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
