package dev.moe4j.model;

/** Where a sequence stands in a {@link LanguageModel}: its KV cache and the next position to fill. */
public interface InferenceState {
    /** Positions already fed (the next token goes at this position). */
    int position();

    /** The most positions this state can hold. */
    int capacity();

    /**
     * Forgets the positions from {@code position} on and keeps those before it, with the memory: the next token
     * fed goes at {@code position} (0 starts a new sequence). Nothing is cleared; what lies beyond is overwritten
     * as the sequence goes on, so a kept prefix costs nothing to return to.
     */
    void rewind(int position);

    /**
     * A state of {@code capacity} positions holding a copy of this one's filled positions, for a sequence that
     * outgrew this state; this state is left as it was.
     */
    InferenceState grown(int capacity);

    /**
     * Gives back the state's memory now (a GPU's KV cache is not the garbage collector's); the state must not be
     * used afterwards. Nothing to do for a state in host memory.
     */
    default void release() {
    }
}
