package dev.moe4j.core;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Splits a range of rows over a fixed pool of worker threads. Each index is handled by exactly one thread and
 * the split depends only on the range and the thread count, so kernels that write disjoint rows are
 * deterministic for a fixed thread count.
 *
 * <p>A parallel step is posted where idle workers look for it; the calling thread takes parts of it too, and every
 * thread takes the next part left until none is. A worker that has run out of work keeps looking for the next
 * posted step for {@link #SPIN_NANOS} before it goes back to sleep in the pool: a decoded token is hundreds of small
 * steps, tens of microseconds apart, and a sleeping worker took tens of microseconds to wake for each of them (a
 * profile of a two-thread decode had the caller run 59 % of the kernels' samples, where an even share is 50 %).
 *
 * <p>The thread count defaults to the number of processors, or the system property {@code moe4j.threads}.
 */
public final class Parallel {
    /** Work on the half-open range [from, to). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to);
    }

    /**
     * How long a worker without work keeps looking for the next step before it sleeps: {@code moe4j.spinMicros}
     * microseconds (default 200; 0 sleeps at once, as a plain pool does).
     */
    static final long SPIN_NANOS = Math.max(0, Long.getLong("moe4j.spinMicros", 200)) * 1000;

    private static volatile int threads = defaultThreads();
    /**
     * threads - 1 workers: the thread that calls {@link #forRange} runs a part too, so that many threads are busy
     * and no more. A pool of {@code threads} put threads + 1 runnable threads on as many cores whenever a caller's
     * parts went to a worker while the others were busy (experts spread over the threads, each splitting its
     * matmuls).
     */
    private static volatile Workers workers = new Workers(threads);

    private Parallel() {
    }

    private static int defaultThreads() {
        String configured = System.getProperty("moe4j.threads");
        if (configured != null && !configured.isBlank()) {
            return Math.max(1, Integer.parseInt(configured.trim()));
        }
        return Runtime.getRuntime().availableProcessors();
    }

    public static int threads() {
        return threads;
    }

    /** Replaces the worker pool; call it before work starts (the CLI does so for {@code --threads}). */
    public static synchronized void setThreads(int count) {
        if (count < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + count);
        }
        if (count != threads) {
            Workers old = workers;
            workers = new Workers(count);
            threads = count;
            old.pool.shutdown();
        }
    }

    /**
     * Runs {@code task} over [0, n) in at most {@link #threads()} contiguous chunks of at least {@code minChunk}
     * indices. Small ranges run on the calling thread without touching the pool.
     */
    public static void forRange(int n, int minChunk, RangeTask task) {
        split(n, Math.min(threads(), Math.max(1, n / Math.max(1, minChunk))), task);
    }

    /** How many pieces a thread {@link #forRangeBalanced} cuts a range into, at most. */
    private static final int PIECES_PER_THREAD = 4;

    /**
     * As {@link #forRange}, for kernels whose indices all cost about the same and that read their own data per index
     * (decode's weight rows, each read once from memory): the range is cut into up to {@value #PIECES_PER_THREAD}
     * pieces a thread, each of at least {@code minChunk} indices, so that a worker that comes late (a time slice on a
     * busy machine) takes fewer pieces rather than holding up one chunk of its own. The cut depends only on the range,
     * {@code minChunk} and the thread count, and a piece writes the same whichever thread runs it.
     */
    public static void forRangeBalanced(int n, int minChunk, RangeTask task) {
        int threads = threads();
        split(n, threads == 1 ? 1 : Math.min(threads * PIECES_PER_THREAD, Math.max(1, n / Math.max(1, minChunk))), task);
    }

    /** [0, n) in {@code parts} pieces over the workers; one part, or one index, runs on the calling thread. */
    private static void split(int n, int parts, RangeTask task) {
        if (parts <= 1 || n <= 1) {
            task.run(0, n);
            return;
        }
        workers.run(new Pieces(task, n, parts));
    }

    /** Runs {@code task} over [0, n) with one index per chunk allowed (for coarse tasks such as experts). */
    public static void forEach(int n, RangeTask task) {
        forRange(n, 1, task);
    }

    /** Throws what a part threw (unchecked: tasks cannot throw anything else), if anything. */
    private static void rethrow(Throwable failure) {
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
    }

    /**
     * The worker threads and the step posted for them. The pool's threads run {@link #serve} while there is work and
     * for {@link #SPIN_NANOS} after, then return to the pool and sleep until the next step hands it a task.
     */
    private static final class Workers {
        final ForkJoinPool pool;
        final int count;
        /** The latest step with parts a worker may take (a step done may linger here; it has none left to take). */
        final AtomicReference<Pieces> posted = new AtomicReference<>();
        /** Workers in {@link #serve}, or handed a task that will be. */
        final AtomicInteger serving = new AtomicInteger();

        Workers(int threads) {
            count = Math.max(1, threads - 1);
            pool = new ForkJoinPool(count, p -> {
                var thread = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
                thread.setName("moe4j-worker-" + thread.getPoolIndex());
                thread.setDaemon(true);
                return thread;
            }, null, false);
        }

        /**
         * Posts the step, wakes the workers that are not serving, takes parts of it until none is left, waits for
         * the parts that others took, and throws what a part threw. A step posted from inside a part (experts spread
         * over the threads, each splitting its matmuls) replaces the outer one while it lasts: the outer one's parts
         * left are then its caller's, and workers that finish theirs take the inner one's.
         */
        void run(Pieces step) {
            Pieces outer = posted.getAndSet(step);
            // Posting comes before counting, and a worker leaving uncounts itself before looking once more: one of
            // the two sees the other, so a step is never left with no worker to take it and none woken.
            for (int missing = count - serving.get(); missing > 0; missing--) {
                serving.incrementAndGet();
                pool.execute(this::serve);
            }
            step.run();
            step.awaitTheRest(this);
            posted.compareAndSet(step, outer);
            rethrow(step.failure);
        }

        /** A worker's loop: the posted step's parts while there are any, then a while of looking for the next. */
        private void serve() {
            long idleSince = System.nanoTime();
            while (true) {
                Pieces step = posted.get();
                if (step != null && step.hasUntaken()) {
                    step.run();
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    serving.decrementAndGet();
                    step = posted.get();
                    if (step == null || !step.hasUntaken()) {
                        return;
                    }
                    serving.incrementAndGet(); // a step came as this worker was leaving: it stays
                }
            }
        }
    }

    /** Piece p of {@code count} covers [n·p/count, n·(p+1)/count); threads take them in turn. */
    private static final class Pieces {
        private final RangeTask task;
        private final int n;
        private final int count;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger finished = new AtomicInteger();
        private volatile Throwable failure;

        Pieces(RangeTask task, int n, int count) {
            this.task = task;
            this.n = n;
            this.count = count;
        }

        boolean hasUntaken() {
            return next.get() < count;
        }

        /** Takes pieces until none is left; a thread that comes after the last finds none and returns. */
        void run() {
            for (int p = next.getAndIncrement(); p < count; p = next.getAndIncrement()) {
                try {
                    task.run((int) ((long) n * p / count), (int) ((long) n * (p + 1) / count));
                } catch (RuntimeException | Error e) {
                    if (failure == null) {
                        failure = e;
                    }
                } finally {
                    finished.incrementAndGet();
                }
            }
        }

        /**
         * Waits for the pieces that other threads still run, taking parts of whatever other step is posted meanwhile
         * (an expert's matmul that the thread still busy with its last expert posted). Each piece left runs on a
         * thread that is not waiting, so the wait ends; the caller spins (and yields, in case the machine is busy and
         * the worker waits for a core) rather than parking and being woken.
         */
        void awaitTheRest(Workers workers) {
            for (int spins = 0; finished.get() < count; spins++) {
                Pieces other = workers.posted.get();
                if (other != this && other != null && other.hasUntaken()) {
                    other.run();
                    spins = 0;
                } else if (spins < 1 << 12) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
        }
    }
}
