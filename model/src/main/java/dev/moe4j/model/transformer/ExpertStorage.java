package dev.moe4j.model.transformer;

/** How a {@link WeightSource} holds experts: as checkpoints store them, or as training stacks them. */
public enum ExpertStorage {
    /**
     * One tensor per projection per expert, [I, H] gate and up and [H, I] down, as Hugging Face checkpoints of
     * Mixtral, Qwen, OLMoE and DeepSeek store them: used in place (memory-mapped), for inference.
     */
    SEPARATE,
    /**
     * [E, 2I, H] gate and up rows and [E, H, I] down (with [E, 2I] and [E, H] biases where the experts have them),
     * the layout training updates and transformers keeps in memory.
     */
    STACKED,
    /**
     * Stacked and stored [in, out]: [E, H, 2I] gate and up (interleaved columns) and [E, I, H] down, as gpt-oss
     * checkpoints store them: used in place, for inference.
     */
    TRANSPOSED
}
