package dev.moe4j.core;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParallelTest {
    private final int threads = Parallel.threads();

    @AfterEach
    void restore() {
        Parallel.setThreads(threads);
    }

    @Test
    void everyIndexRunsExactlyOnceFromOutsideAndInsideThePool() {
        Parallel.setThreads(4);
        var outer = new AtomicIntegerArray(1000);
        var inner = new AtomicIntegerArray(1000 * 7);
        Parallel.forRange(1000, 1, (from, to) -> {
            for (int i = from; i < to; i++) {
                outer.incrementAndGet(i);
            }
        });
        Parallel.forRange(7, 1, (from, to) -> {
            for (int j = from; j < to; j++) {
                int row = j;
                Parallel.forRange(1000, 10, (a, b) -> {
                    for (int i = a; i < b; i++) {
                        inner.incrementAndGet(row * 1000 + i);
                    }
                });
            }
        });
        for (int i = 0; i < outer.length(); i++) {
            assertEquals(1, outer.get(i), "index " + i);
        }
        for (int i = 0; i < inner.length(); i++) {
            assertEquals(1, inner.get(i), "nested index " + i);
        }
    }

    @Test
    void theCallerTakesPartInsteadOfOnlyWaiting() {
        Parallel.setThreads(2);
        Set<Thread> ran = ConcurrentHashMap.newKeySet();
        Thread caller = Thread.currentThread();
        for (int attempt = 0; attempt < 100 && !ran.contains(caller); attempt++) {
            Parallel.forRange(2, 1, (from, to) -> ran.add(Thread.currentThread()));
        }
        assertTrue(ran.contains(caller), "the calling thread ran a chunk");
    }

    /**
     * With every worker busy, a caller runs the chunks it handed out itself rather than sleeping until a worker gets
     * to them: experts spread over the threads each split their matmuls, and the caller's chunks waited behind the
     * worker's own expert.
     */
    @Test
    void aCallerWhoseWorkersAreBusyRunsItsOwnChunks() {
        Set<Thread> nested = ConcurrentHashMap.newKeySet();
        Thread caller = Thread.currentThread();
        whileTheWorkerIsBusy(() -> Parallel.forRange(2, 1, (a, b) -> nested.add(Thread.currentThread())));
        assertEquals(Set.of(caller), nested, "the nested chunks ran on the caller while the worker was busy");
    }

    /** Runs {@code onCaller} on this thread while the one worker of a 2-thread pool is held in a chunk of its own. */
    private static void whileTheWorkerIsBusy(Runnable onCaller) {
        Parallel.setThreads(2);
        var workerBusy = new java.util.concurrent.CountDownLatch(1);
        var release = new java.util.concurrent.CountDownLatch(1);
        Thread caller = Thread.currentThread();
        Parallel.forRange(2, 1, (from, to) -> {
            if (Thread.currentThread() != caller) {
                workerBusy.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return;
            }
            try {
                assertTrue(workerBusy.await(10, java.util.concurrent.TimeUnit.SECONDS), "the worker took a chunk");
                onCaller.run();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                release.countDown();
            }
        });
    }

    @Test
    void aFailingChunkIsRethrownOnlyAfterEveryChunkHasFinished() {
        Parallel.setThreads(4);
        var finished = new AtomicInteger();
        var e = assertThrows(IllegalStateException.class, () -> Parallel.forRange(4, 1, (from, to) -> {
            if (from == 0) {
                throw new IllegalStateException("chunk 0");
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
            }
            finished.incrementAndGet();
        }));
        assertEquals("chunk 0", e.getMessage());
        assertEquals(3, finished.get(), "the other chunks ran to their end before the exception came back");
        var fromWorker = assertThrows(IllegalArgumentException.class, () -> Parallel.forRange(4, 1, (from, to) -> {
            if (from != 0) {
                throw new IllegalArgumentException("a worker's chunk");
            }
        }));
        assertEquals("a worker's chunk", fromWorker.getMessage());
    }

    /** forRangeBalanced cuts a range by its length, minChunk and thread count only, and runs each piece once. */
    @Test
    void balancedPiecesDependOnlyOnTheRangeAndEachRunsOnce() {
        Parallel.setThreads(2);
        Set<String> pieces = ConcurrentHashMap.newKeySet();
        var seen = new AtomicIntegerArray(1000);
        Parallel.forRangeBalanced(1000, 10, (from, to) -> {
            pieces.add(from + ".." + to);
            for (int i = from; i < to; i++) {
                seen.incrementAndGet(i);
            }
        });
        Set<String> expected = new java.util.HashSet<>();
        for (int p = 0; p < 8; p++) { // 2 threads, 4 pieces each
            expected.add(1000 * p / 8 + ".." + 1000 * (p + 1) / 8);
        }
        assertEquals(expected, pieces);
        for (int i = 0; i < seen.length(); i++) {
            assertEquals(1, seen.get(i), "index " + i);
        }
    }

    /** With the worker busy elsewhere, a caller of forRangeBalanced runs every piece itself and does not wait. */
    @Test
    void aBalancedCallerWhoseWorkerIsBusyRunsEveryPiece() {
        Set<Thread> ran = ConcurrentHashMap.newKeySet();
        var count = new AtomicInteger();
        Thread caller = Thread.currentThread();
        whileTheWorkerIsBusy(() -> Parallel.forRangeBalanced(100, 1, (a, b) -> {
            ran.add(Thread.currentThread());
            count.addAndGet(b - a);
        }));
        assertEquals(Set.of(caller), ran, "every piece ran on the caller while the worker was busy");
        assertEquals(100, count.get());
    }

    /**
     * A caller done with its own parts, waiting for a worker's, takes parts of the step that worker posts from inside
     * its part (the last expert's matmul, with the other experts done): the worker's first piece holds until another
     * thread has taken a piece of the same step, which only the waiting caller can.
     */
    @Test
    void aWaitingCallerTakesPartsOfAStepItsWorkerPosts() throws InterruptedException {
        Parallel.setThreads(2);
        Thread caller = Thread.currentThread();
        var workerStarted = new java.util.concurrent.CountDownLatch(1);
        var callerHelped = new java.util.concurrent.CountDownLatch(1);
        Set<Thread> nested = ConcurrentHashMap.newKeySet();
        var held = new java.util.concurrent.atomic.AtomicBoolean();
        Parallel.forRange(2, 1, (from, to) -> {
            try {
                if (Thread.currentThread() == caller) {
                    assertTrue(workerStarted.await(10, java.util.concurrent.TimeUnit.SECONDS), "the worker took a part");
                    return;
                }
                workerStarted.countDown();
                Parallel.forRangeBalanced(100, 1, (a, b) -> {
                    nested.add(Thread.currentThread());
                    try {
                        if (Thread.currentThread() == caller) {
                            callerHelped.countDown();
                        } else if (held.compareAndSet(false, true)) {
                            held.set(callerHelped.await(10, java.util.concurrent.TimeUnit.SECONDS));
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertTrue(held.get(), "the worker's first piece saw the caller take a piece of its step");
        assertTrue(nested.contains(caller), "the waiting caller ran pieces of the worker's step");
    }

    @Test
    void aFailingBalancedPieceIsRethrownAfterTheOthersFinish() {
        Parallel.setThreads(2);
        var finished = new AtomicInteger();
        var e = assertThrows(IllegalStateException.class, () -> Parallel.forRangeBalanced(8, 1, (from, to) -> {
            if (from == 3) {
                throw new IllegalStateException("piece 3");
            }
            finished.incrementAndGet();
        }));
        assertEquals("piece 3", e.getMessage());
        assertEquals(7, finished.get(), "the other pieces ran before the exception came back");
    }
}
