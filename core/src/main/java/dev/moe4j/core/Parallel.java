package dev.moe4j.core;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Splits a range of rows over a fixed pool of worker threads. Each index is handled by exactly one thread and
 * the split depends only on the range and the thread count, so kernels that write disjoint rows are
 * deterministic for a fixed thread count.
 *
 * <p>The thread count defaults to the number of processors, or the system property {@code moe4j.threads}.
 */
public final class Parallel {
    /** Work on the half-open range [from, to). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to);
    }

    private static volatile int threads = defaultThreads();
    /**
     * threads - 1 workers: the thread that calls {@link #forRange} runs a chunk too, so that many threads are busy
     * and no more. A pool of {@code threads} put threads + 1 runnable threads on as many cores whenever a caller's
     * chunks went to a worker while the others were busy (experts spread over the threads, each splitting its
     * matmuls).
     */
    private static volatile ForkJoinPool pool = newPool(threads);

    private Parallel() {
    }

    private static int defaultThreads() {
        String configured = System.getProperty("moe4j.threads");
        if (configured != null && !configured.isBlank()) {
            return Math.max(1, Integer.parseInt(configured.trim()));
        }
        return Runtime.getRuntime().availableProcessors();
    }

    private static ForkJoinPool newPool(int threads) {
        return new ForkJoinPool(Math.max(1, threads - 1), p -> {
            var thread = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
            thread.setName("moe4j-worker-" + thread.getPoolIndex());
            thread.setDaemon(true);
            return thread;
        }, null, false);
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
            ForkJoinPool old = pool;
            pool = newPool(count);
            threads = count;
            old.shutdown();
        }
    }

    /**
     * Runs {@code task} over [0, n) in at most {@link #threads()} contiguous chunks of at least {@code minChunk}
     * indices. Small ranges run on the calling thread without touching the pool.
     */
    public static void forRange(int n, int minChunk, RangeTask task) {
        int chunks = Math.min(threads(), Math.max(1, n / Math.max(1, minChunk)));
        if (chunks <= 1 || n <= 1) {
            task.run(0, n);
            return;
        }
        ForkJoinPool workers = pool;
        if (ForkJoinTask.getPool() == workers) {
            new Chunks(task, n, 0, chunks).invoke();
            return;
        }
        // A thread outside the pool (the one generating, say) runs the first chunk itself rather than handing every
        // chunk over and sleeping until the last one is done: a decoded token runs hundreds of small parallel steps,
        // and each hand-off it saves is a thread woken up, which costs tens of microseconds on a quiet machine and
        // a scheduler time slice on a busy one. Then it runs every chunk that no worker has claimed yet, and waits
        // only for those that a worker has. (ForkJoinTask.tryUnfork cannot take a task back from this pool's
        // queue: from outside a pool it looks at the common pool's. A caller whose worker was busy, as when experts
        // are spread over the threads and each splits its matmuls, then slept until the worker got to its chunk.)
        var others = new Chunks[chunks - 1];
        for (int c = 1; c < chunks; c++) {
            others[c - 1] = new Chunks(task, n, c, 1, chunks);
            workers.execute(others[c - 1]);
        }
        Throwable failure = null;
        try {
            new Chunks(task, n, 0, 1, chunks).compute();
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        for (int c = others.length - 1; c >= 0; c--) {
            if (others[c].claim()) {
                try {
                    others[c].runRange();
                } catch (RuntimeException | Error e) {
                    failure = failure == null ? e : failure;
                }
            } else {
                // a worker runs it: every chunk has finished before this returns or throws, as the caller may
                // reuse what they wrote to
                others[c].quietlyJoin();
                if (failure == null && others[c].getException() != null) {
                    failure = original(others[c].getException());
                }
            }
        }
        rethrow(failure);
    }

    /** Throws what a chunk threw (unchecked: tasks cannot throw anything else), if anything. */
    private static void rethrow(Throwable failure) {
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
    }

    /** How many pieces a thread {@link #forRangeBalanced} cuts a range into, at most. */
    private static final int PIECES_PER_THREAD = 4;

    /**
     * As {@link #forRange}, for kernels whose indices all cost about the same and that read their own data per index
     * (decode's weight rows, each read once from memory): the range is cut into up to {@value #PIECES_PER_THREAD}
     * pieces a thread, each of at least {@code minChunk} indices, and the calling thread and the workers take the next
     * piece until none is left. A worker that wakes late (tens of microseconds on a quiet machine, a time slice on a
     * busy one) then takes fewer pieces, where {@code forRange}'s one chunk a thread had the caller either wait for
     * it or run the whole chunk after its own. The cut depends only on the range, {@code minChunk} and the thread
     * count, and a piece writes the same whichever thread runs it.
     */
    public static void forRangeBalanced(int n, int minChunk, RangeTask task) {
        int threads = threads();
        int pieces = Math.min(threads * PIECES_PER_THREAD, Math.max(1, n / Math.max(1, minChunk)));
        ForkJoinPool workers = pool;
        if (threads == 1 || pieces <= threads || ForkJoinTask.getPool() == workers) {
            forRange(n, minChunk, task);
            return;
        }
        var work = new Pieces(task, n, pieces);
        for (int i = 0; i < threads - 1; i++) {
            workers.execute(work::run);
        }
        work.run();
        work.awaitTheRest();
        rethrow(work.failure);
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

        /** Takes pieces until none is left; a worker that comes after the last finds none and returns. */
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
         * Waits for the pieces that workers still run. Every piece has been taken by then, and each runs on another
         * core for about as long as one of the caller's, so the caller spins (and yields, in case the machine is busy
         * and the worker waits for a core) rather than parking and being woken.
         */
        void awaitTheRest() {
            for (int spins = 0; finished.get() < count; spins++) {
                if (spins < 1 << 12) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
        }
    }

    /**
     * What a worker's chunk threw: the fork/join framework hands the joining thread a copy of the same type whose
     * cause is the original, with the original's message prefixed by its class name; users see the original.
     */
    private static Throwable original(Throwable thrown) {
        Throwable cause = thrown.getCause();
        return cause != null && cause.getClass() == thrown.getClass() ? cause : thrown;
    }

    /** Runs {@code task} over [0, n) with one index per chunk allowed (for coarse tasks such as experts). */
    public static void forEach(int n, RangeTask task) {
        forRange(n, 1, task);
    }

    /** Chunk {@code c} of {@code chunks} covers [n·c/chunks, n·(c+1)/chunks): balanced and deterministic. */
    private static final class Chunks extends RecursiveAction {
        private final RangeTask task;
        private final int n;
        private final int firstChunk;
        private final int chunkCount;
        private final int totalChunks;

        Chunks(RangeTask task, int n, int firstChunk, int totalChunks) {
            this(task, n, firstChunk, totalChunks, totalChunks);
        }

        private Chunks(RangeTask task, int n, int firstChunk, int chunkCount, int totalChunks) {
            this.task = task;
            this.n = n;
            this.firstChunk = firstChunk;
            this.chunkCount = chunkCount;
            this.totalChunks = totalChunks;
        }

        /** Set by whichever thread takes this chunk first: the worker that dequeues it, or the caller. */
        private final AtomicBoolean claimed = new AtomicBoolean();

        boolean claim() {
            return !claimed.get() && claimed.compareAndSet(false, true);
        }

        void runRange() {
            int from = (int) ((long) n * firstChunk / totalChunks);
            int to = (int) ((long) n * (firstChunk + 1) / totalChunks);
            task.run(from, to);
        }

        @Override
        protected void compute() {
            if (chunkCount == 1) {
                if (claim()) {
                    runRange();
                }
                return;
            }
            int half = chunkCount / 2;
            invokeAll(new Chunks(task, n, firstChunk, half, totalChunks),
                    new Chunks(task, n, firstChunk + half, chunkCount - half, totalChunks));
        }
    }
}
