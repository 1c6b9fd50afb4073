package dev.moe4j.model.config;

/** Whether queries and keys are RMS-normalised after projection, and over which dimensions. */
public enum QkNorm {
    NONE,
    /** Each head's vector normalised with one weight of head_dim shared by all heads (Qwen3). */
    PER_HEAD,
    /** The whole query (heads x head_dim) and key (kv_heads x head_dim) projections normalised (OLMoE). */
    WHOLE_PROJECTION
}
