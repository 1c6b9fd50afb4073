package dev.moe4j.moe;

/** Whether a forward pass trains (noise, capacity statistics, saved activations) or only infers. */
public enum Mode {
    /** Adds router noise, updates expert-choice thresholds and keeps what backward needs. */
    TRAINING,
    /** Deterministic, causal where the router allows it, keeps nothing for backward. */
    INFERENCE
}
