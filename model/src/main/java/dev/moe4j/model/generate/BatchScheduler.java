package dev.moe4j.model.generate;

import dev.moe4j.model.LanguageModel;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * Runs many {@link DecodingSequence}s at once by iteration-level scheduling (continuous batching): every step feeds
 * each running sequence's next tokens in one forward pass ({@link LanguageModel#forward(List, List)}), so that an
 * expert's weights, read once, serve every sequence routed to it. Sequences join between steps as they arrive (up
 * to {@code maxSequences} running, the rest wait in arrival order) and leave as soon as they are done. Prompts are
 * fed in chunks of at most {@code prefillChunk} tokens a step in all, so that a long prompt does not stall the
 * decoding of the others. A sequence whose options carry an observer is fed alone within the step (observers hear
 * one sequence's passes).
 *
 * <p>One thread (this scheduler's) runs the model and the sequences' listeners, so a listener must not block: hand
 * its text to another thread. A sequence is stopped between steps when its stopper says so.
 */
public final class BatchScheduler implements AutoCloseable {
    private final LanguageModel model;
    private final int maxSequences;
    private final int prefillChunk;
    private final long kvBudget;
    private final long kvBytesPerPosition;
    /** KV bytes the running sequences may fill, each counted at its prompt plus token budget. */
    private long kvReserved;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition arrived = lock.newCondition();
    private final ArrayDeque<Job> waiting = new ArrayDeque<>();
    private final List<Job> running = new ArrayList<>();
    /** Siblings waiting for their parent's prompt to go through the model. */
    private final List<Job> siblings = new ArrayList<>();
    private final Thread thread;
    private volatile boolean closed;
    private volatile int runningCount;
    /** Read by other threads (metrics): the reservation, and the KV bytes the running sequences hold after a step. */
    private volatile long kvReservedNow, kvFilledNow;

    /** A submitted sequence: its result, and what stops it (a supplier of the exception to end it with, or null). */
    private static final class Job {
        final DecodingSequence sequence;
        final Supplier<RuntimeException> stopper;
        final CompletableFuture<Generation> result = new CompletableFuture<>();
        /** The sequence whose prompt this one shares and starts from, or null. */
        final DecodingSequence parent;
        int[] chunk;
        int fed;

        Job(DecodingSequence sequence, Supplier<RuntimeException> stopper, DecodingSequence parent) {
            this.sequence = sequence;
            this.stopper = stopper;
            this.parent = parent;
        }
    }

    public BatchScheduler(LanguageModel model, int maxSequences, int prefillChunk) {
        this(model, maxSequences, prefillChunk, 0);
    }

    /**
     * As {@link #BatchScheduler(LanguageModel, int, int)}, admitting a sequence only while the KV caches of the
     * running ones, each counted at its prompt plus its token budget, fit in {@code kvBudget} bytes (0: no limit).
     * A sequence that alone needs more is failed with a message that says how much.
     */
    public BatchScheduler(LanguageModel model, int maxSequences, int prefillChunk, long kvBudget) {
        if (maxSequences < 1 || prefillChunk < 1 || kvBudget < 0) {
            throw new IllegalArgumentException("maxSequences and prefillChunk must be positive, kvBudget not negative");
        }
        this.model = model;
        this.maxSequences = maxSequences;
        this.prefillChunk = prefillChunk;
        this.kvBudget = kvBudget;
        this.kvBytesPerPosition = model.kvBytesPerPosition();
        this.thread = Thread.ofPlatform().name("moe4j-scheduler").daemon().start(this::loop);
    }

    /**
     * Queues a sequence (not started yet); the future completes with its generation, or exceptionally with what
     * failed it or the stopper's exception. {@code stopper} is asked before every step.
     */
    public CompletableFuture<Generation> submit(DecodingSequence sequence, Supplier<RuntimeException> stopper) {
        return enqueue(new Job(sequence, stopper, null));
    }

    /**
     * Queues the choices of one request, which share its prompt: the first goes through the model as
     * {@link #submit} does (keeping its prompt's logits), the others wait until its prompt has, then start from a
     * copy of its cache and its prompt logits (n choices prefill their prompt once); they fail as the first does if
     * it fails before that. All are queued at once, so none can miss the first one's prefill. The futures are in the
     * order of {@code choices}.
     */
    public List<CompletableFuture<Generation>> submitChoices(List<DecodingSequence> choices,
                                                             Supplier<RuntimeException> stopper) {
        DecodingSequence parent = choices.getFirst();
        if (choices.size() > 1) {
            parent.keepPromptLogits();
        }
        var jobs = new ArrayList<Job>(choices.size());
        for (int i = 0; i < choices.size(); i++) {
            jobs.add(new Job(choices.get(i), stopper, i == 0 ? null : parent));
        }
        lock.lock();
        try {
            for (Job job : jobs.reversed()) { // the siblings are in place before the first can be admitted
                enqueue(job);
            }
        } finally {
            lock.unlock();
        }
        return jobs.stream().map(j -> j.result).toList();
    }

    private CompletableFuture<Generation> enqueue(Job job) {
        lock.lock();
        try {
            if (closed) {
                job.result.completeExceptionally(new IllegalStateException("the scheduler is closed"));
            } else if (job.parent != null) {
                siblings.add(job);
            } else {
                waiting.add(job);
                arrived.signal();
            }
        } finally {
            lock.unlock();
        }
        return job.result;
    }

    /** Sequences waiting for room. */
    public int waiting() {
        lock.lock();
        try {
            return waiting.size();
        } finally {
            lock.unlock();
        }
    }

    /** Sequences being decoded. */
    public int running() {
        return runningCount;
    }

    /** KV cache bytes reserved by the running sequences (each at its prompt plus token budget). */
    public long kvReservedBytes() {
        return kvReservedNow;
    }

    /** KV cache bytes the running sequences have filled, as of the last step. */
    public long kvFilledBytes() {
        return kvFilledNow;
    }

    /** The KV cache budget in bytes (--kv-cache-size), 0 for none. */
    public long kvBudgetBytes() {
        return kvBudget;
    }

    /** The most sequences decoded together. */
    public int maxSequences() {
        return maxSequences;
    }

    private void loop() {
        while (true) {
            lock.lock();
            try {
                while (!closed && waiting.isEmpty() && running.isEmpty()) {
                    arrived.awaitUninterruptibly();
                }
                if (closed) {
                    break;
                }
                while (running.size() < maxSequences && !waiting.isEmpty()) {
                    long need = kvBytes(waiting.peek());
                    if (kvBudget > 0 && need > kvBudget) {
                        Job refused = waiting.poll();
                        var e = new dev.moe4j.core.BadInputException("the request needs " + need + " bytes of KV cache"
                                + " (" + refused.sequence.positionsNeeded() + " positions: the prompt and its token"
                                + " budget), more than the server's --kv-cache-size of " + kvBudget + "; ask for fewer"
                                + " tokens");
                        refused.result.completeExceptionally(e);
                        failSiblings(refused.sequence, e);
                        continue;
                    }
                    if (kvBudget > 0 && kvReserved + need > kvBudget && !running.isEmpty()) {
                        break; // it waits, in its turn, for running sequences to give back their room
                    }
                    Job job = waiting.poll();
                    try {
                        job.sequence.start();
                        running.add(job);
                        kvReserved += need;
                    } catch (RuntimeException | Error e) {
                        job.result.completeExceptionally(e);
                        failSiblings(job.sequence, e);
                    }
                }
                runningCount = running.size();
            } finally {
                lock.unlock();
            }
            try {
                step();
            } catch (RuntimeException | Error e) {
                // a failure outside any one sequence's pass (a bug here): the sequences of this step end with it and
                // the scheduler goes on, rather than leaving every request waiting on a thread that has died
                for (Job job : List.copyOf(running)) {
                    end(job, e);
                }
            }
        }
        var ended = new IllegalStateException("the scheduler was closed");
        running.forEach(j -> j.result.completeExceptionally(ended));
        waiting.forEach(j -> j.result.completeExceptionally(ended));
        siblings.forEach(j -> j.result.completeExceptionally(ended));
    }

    /** Feeds every running sequence its next chunk, then lets each that got its logits choose a token. */
    private void step() {
        var together = new ArrayList<Job>();
        var alone = new ArrayList<Job>();
        int promptBudget = prefillChunk;
        for (Job job : List.copyOf(running)) {
            RuntimeException stop = job.stopper.get();
            if (stop != null) {
                end(job, stop);
                continue;
            }
            int[] pending = job.sequence.pending();
            int left = pending.length - job.fed;
            // a prompt takes what is left of the step's prompt budget; one token (decoding) always goes
            int take = left == 1 ? 1 : Math.min(left, promptBudget);
            if (take == 0) {
                continue;
            }
            if (left > 1) {
                promptBudget -= take;
            }
            job.chunk = Arrays.copyOfRange(pending, job.fed, job.fed + take);
            (job.sequence.options().observer() == null ? together : alone).add(job);
        }
        if (!together.isEmpty()) {
            try {
                var logits = SequenceCache.feedTogether(model, together.stream().map(j -> j.sequence.cache()).toList(),
                        together.stream().map(j -> j.chunk).toList());
                for (int i = 0; i < together.size(); i++) {
                    advance(together.get(i), logits.get(i));
                }
            } catch (RuntimeException | Error e) {
                together.forEach(j -> end(j, e));
            }
        }
        for (Job job : alone) {
            try {
                advance(job, job.sequence.cache().feed(model, job.chunk, job.sequence.options().observer()));
            } catch (RuntimeException | Error e) {
                end(job, e);
            }
        }
        long filled = 0;
        for (Job job : running) {
            filled += job.sequence.cache().length() * kvBytesPerPosition;
        }
        kvFilledNow = filled;
        kvReservedNow = kvReserved;
    }

    /** Counts a fed chunk; once the pending tokens are all in, their last logits choose the next token. */
    private void advance(Job job, float[] logits) {
        job.fed += job.chunk.length;
        if (job.fed < job.sequence.pending().length) {
            return;
        }
        job.fed = 0;
        boolean first = !job.sequence.prefilled();
        try {
            boolean more = job.sequence.accept(logits);
            if (first) {
                startSiblings(job.sequence);
            }
            if (!more) {
                leave(job);
                job.result.complete(job.sequence.result());
            }
        } catch (RuntimeException | Error e) {
            end(job, e);
        }
    }

    /** The siblings of a sequence just prefilled start from its cache and join the running sequences. */
    private void startSiblings(DecodingSequence parent) {
        List<Job> ready;
        lock.lock();
        try {
            ready = siblings.stream().filter(j -> j.parent == parent).toList();
            siblings.removeAll(ready);
        } finally {
            lock.unlock();
        }
        for (Job sibling : ready) {
            try {
                if (sibling.sequence.startAsCopyOf(parent)) {
                    // a request's choices share its admission: siblings count without waiting for room
                    running.add(sibling);
                    kvReserved += kvBytes(sibling);
                } else {
                    sibling.result.complete(sibling.sequence.result());
                }
            } catch (RuntimeException | Error e) {
                sibling.result.completeExceptionally(e);
            }
        }
        runningCount = running.size();
    }

    private void end(Job job, Throwable e) {
        leave(job);
        job.result.completeExceptionally(e);
        if (!job.sequence.prefilled()) {
            failSiblings(job.sequence, e);
        }
    }

    /** Takes a job out of the running sequences, giving back its KV reservation. */
    private void leave(Job job) {
        if (running.remove(job)) {
            kvReserved -= kvBytes(job);
        }
        runningCount = running.size();
    }

    /** The KV bytes a sequence may fill. */
    private long kvBytes(Job job) {
        return job.sequence.positionsNeeded() * kvBytesPerPosition;
    }

    /** The siblings of a sequence that failed before its prompt went through fail with it. */
    private void failSiblings(DecodingSequence parent, Throwable e) {
        lock.lock();
        try {
            var orphans = siblings.stream().filter(j -> j.parent == parent).toList();
            siblings.removeAll(orphans);
            orphans.forEach(j -> j.result.completeExceptionally(e));
        } finally {
            lock.unlock();
        }
    }

    /** Stops after the current step; sequences not finished end with an exception. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
