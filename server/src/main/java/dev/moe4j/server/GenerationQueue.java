package dev.moe4j.server;

import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Runs generations one at a time, in the order their requests arrived. The model holds one set of weights and
 * its forward pass already uses every core, so running requests side by side would only make each slower; a
 * fair lock is the queue.
 */
final class GenerationQueue {
    private final ReentrantLock lock = new ReentrantLock(true);
    private final AtomicInteger waiting = new AtomicInteger();

    /** Waits for the requests ahead of this one, then runs {@code job}. */
    <T> T run(Callable<T> job) throws Exception {
        waiting.incrementAndGet();
        try {
            lock.lockInterruptibly();
        } finally {
            waiting.decrementAndGet();
        }
        try {
            return job.call();
        } finally {
            lock.unlock();
        }
    }

    /** Requests waiting for their turn. */
    int waiting() {
        return waiting.get();
    }

    /** Whether a generation is running. */
    boolean busy() {
        return lock.isLocked();
    }
}
