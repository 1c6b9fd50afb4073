package dev.moe4j.moe.router;

/** How router logits become per-expert scores. */
public enum Scoring {
    /** Softmax over the experts of a token (Switch, Mixtral, Qwen, OLMoE, gpt-oss). */
    SOFTMAX,
    /** An independent sigmoid per expert (DeepSeek-V3): experts do not compete for probability mass. */
    SIGMOID
}
