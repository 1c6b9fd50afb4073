package dev.moe4j.moe.router;

/** Whether the gate weights are the scores of the chosen experts, or a softmax taken over the chosen logits only. */
public enum GateOrder {
    /** Score every expert, keep the top k scores (Mixtral, Qwen, OLMoE, DeepSeek, Switch). */
    SOFTMAX_THEN_TOP_K,
    /** Keep the top k logits, softmax over them (gpt-oss; Shazeer et al.'s noisy top-k gating). */
    TOP_K_THEN_SOFTMAX
}
