package dev.moe4j.core.backend;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Device memory that a block of work allocates, released together when the block ends: a forward pass, a training
 * step. The garbage collector knows nothing of GPU memory, so device backends register each allocation with the
 * innermost scope open on the allocating thread; host tensors live on the Java heap and never register.
 *
 * <p>What must outlive the scope (weights, KV caches, parameter gradients, optimiser state) is allocated through
 * {@link #persistent}, or while no scope is open; a scope hands results back as host copies or in such memory.
 */
public final class MemoryScope implements AutoCloseable {
    private static final ThreadLocal<ArrayDeque<MemoryScope>> OPEN = ThreadLocal.withInitial(ArrayDeque::new);
    /** Stands for "no scope" inside {@link #persistent}, so nested work allocates persistently too. */
    private static final MemoryScope NONE = new MemoryScope();

    private final List<Runnable> releases = new ArrayList<>();
    private boolean closed;

    private MemoryScope() {
    }

    /** Opens a scope on this thread; close it on the same thread, innermost first. */
    public static MemoryScope open() {
        var scope = new MemoryScope();
        OPEN.get().push(scope);
        return scope;
    }

    /**
     * Hands {@code release} to the innermost open scope of this thread, which runs it when it closes; false when
     * none is open (the memory is then the caller's to keep).
     */
    public static boolean adopt(Runnable release) {
        MemoryScope top = OPEN.get().peek();
        if (top == null || top == NONE) {
            return false;
        }
        top.releases.add(release);
        return true;
    }

    /** True when allocations made now would be released by a scope. */
    public static boolean active() {
        MemoryScope top = OPEN.get().peek();
        return top != null && top != NONE;
    }

    /** Runs {@code work} as if no scope were open: what it allocates outlives the scopes around it. */
    public static <T> T persistent(Supplier<T> work) {
        ArrayDeque<MemoryScope> open = OPEN.get();
        open.push(NONE);
        try {
            return work.get();
        } finally {
            open.pop();
        }
    }

    /** Releases everything allocated in this scope, newest first. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        ArrayDeque<MemoryScope> open = OPEN.get();
        if (open.peek() != this) {
            throw new IllegalStateException("memory scopes must close innermost first, on the thread that opened them");
        }
        open.pop();
        RuntimeException failure = null;
        for (int i = releases.size() - 1; i >= 0; i--) {
            try {
                releases.get(i).run();
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        releases.clear();
        if (failure != null) {
            throw failure;
        }
    }
}
