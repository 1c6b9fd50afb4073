package dev.moe4j.core.backend;

/**
 * Where a {@link dev.moe4j.core.Tensor}'s memory lives, and the {@link Backend} that computes on it. The host is
 * {@link #HOST}; a GPU module provides its own devices. Operations run where their operands are, so model code
 * written once against {@code Graph} runs on whichever device its weights were placed on.
 */
public interface Device {
    /** Main memory: heap arrays and memory-mapped files, computed on by the CPU kernels. */
    Device HOST = new Device() {
        @Override
        public String name() {
            return "cpu";
        }

        @Override
        public Backend backend() {
            return CpuBackend.INSTANCE;
        }

        @Override
        public String toString() {
            return "cpu";
        }
    };

    /** A short name for messages: "cpu", "cuda:0". */
    String name();

    /** The operations on tensors of this device. */
    Backend backend();

    /**
     * Binds this device to the calling thread before a block of work (a forward pass): a GPU's context is
     * per OS thread, and a server's virtual thread may resume on another carrier between requests. The host needs
     * nothing.
     */
    default void attach() {
    }

    /**
     * Gives back a tensor's own allocation made outside any memory scope (a KV cache, placed weights) before the
     * process ends. The host's memory is the garbage collector's: nothing to do there.
     */
    default void free(dev.moe4j.core.Tensor t) {
    }

    /**
     * Whether {@link #capture} may record work here: false on the host, whose operations are Java calls.
     */
    default boolean captures() {
        return false;
    }

    /**
     * Records the device work {@code step} queues, without running it, as one {@link CapturedWork}; the memory the
     * step allocates belongs to the recording and keeps its addresses, so tensors the step returns through its own
     * means stay valid for every replay. Null where the device cannot record, or where the step did what a recording
     * cannot hold (a copy between host and device memory, waiting for the device): nothing ran then, and the step may
     * be run directly instead.
     */
    default CapturedWork capture(Runnable step) {
        return null;
    }

    default boolean isHost() {
        return this == HOST;
    }
}
