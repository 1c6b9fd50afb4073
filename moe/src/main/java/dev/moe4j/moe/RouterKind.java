package dev.moe4j.moe;

/** Which family of routing a layer uses. */
public enum RouterKind {
    /** Each token picks its top-k experts (Switch with k = 1, GShard, Mixtral, DeepSeek, noisy top-k, ...). */
    TOP_K,
    /** Every token goes to every expert, weighted by the router probabilities (a top-k with k = experts). */
    DENSE,
    /** Each expert picks its top-C tokens of the batch (Zhou et al. 2022). */
    EXPERT_CHOICE,
    /** Soft MoE (Puigcerver et al. 2023): experts process slots that are convex mixes of all tokens. */
    SOFT
}
