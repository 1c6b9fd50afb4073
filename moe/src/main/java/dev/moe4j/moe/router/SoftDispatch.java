package dev.moe4j.moe.router;

/**
 * Soft MoE's routing (Puigcerver et al. 2023): every slot (expert e owns slots e·p .. e·p + p − 1) takes a convex
 * mix of all tokens, {@code slotInput[s] = Σ_t dispatch[t, s] · x[t]} (dispatch columns sum to 1), and every token
 * takes a convex mix of all slot outputs, {@code out[t] = Σ_s combine[t, s] · y[s]} (combine rows sum to 1).
 * Nothing is dropped and every token reaches every expert, so it is not causal.
 */
public record SoftDispatch(int tokens, int slots, int slotsPerExpert, float[] dispatch, float[] combine) {
    public int experts() {
        return slots / slotsPerExpert;
    }
}
