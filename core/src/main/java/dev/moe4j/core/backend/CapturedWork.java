package dev.moe4j.core.backend;

/**
 * Device work recorded once by {@link Device#capture} and run again as a whole: a GPU's decoding step as one CUDA
 * graph, whose replay costs the host one call instead of one launch per operation. What changes between replays
 * (token ids, positions) is read from device memory that the caller writes before each {@link #replay}.
 */
public interface CapturedWork extends AutoCloseable {
    /** Queues the recorded work on its device, ordered after everything queued before. */
    void replay();

    /** Releases the recording and the device memory its work uses, after queued work that uses them has run. */
    @Override
    void close();
}
