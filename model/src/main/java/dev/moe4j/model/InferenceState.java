package dev.moe4j.model;

/** Where a sequence stands in a {@link LanguageModel}: its KV cache and the next position to fill. */
public interface InferenceState {
    /** Positions already fed (the next token goes at this position). */
    int position();

    /** The most positions this state can hold. */
    int capacity();

    /** Forgets every position, keeping the memory, to start a new sequence. */
    void reset();
}
