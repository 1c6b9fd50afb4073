package dev.moe4j.model;

import dev.moe4j.core.ResidentMemory;

/**
 * Where a CPU model's weights live while it runs. A GPU model's weights are copied to the device whatever is asked.
 */
public enum WeightMemory {
    /** Copied into memory when they fit in what the system reports available, otherwise mapped. */
    AUTO,
    /** Copied out of the checkpoint files into anonymous memory: decoding streams them 2-3x faster (measured). */
    COPIED,
    /** Left in the memory-mapped checkpoint files: nothing is read before it is used, and pages are shared. */
    MAPPED;

    /** Whether weights of {@code bytes} bytes are copied. AUTO keeps a fifth of the available memory free. */
    boolean copies(long bytes) {
        return switch (this) {
            case COPIED -> true;
            case MAPPED -> false;
            case AUTO -> ResidentMemory.availableBytes().map(available -> bytes <= available / 5 * 4).orElse(false);
        };
    }
}
