package dev.moe4j.moe.expert;

import dev.moe4j.core.Tensor;

/**
 * The weights of E experts, however they are stored: moe4j's stacked training tensors
 * ({@link StackedExpertWeights}) or a checkpoint's separate per-expert tensors ({@link SeparateExpertWeights}),
 * both possibly memory-mapped BF16/F16 views that are never copied. Matrices are [out, in] as {@code MatMul}
 * wants them.
 *
 * <p>A gated FFN's input side is either {@link #gateUp} (fused, [2I, H]) or {@link #gate} and {@link #up}
 * ([I, H] each); a plain FFN has only {@link #up}. Biases are null when absent.
 */
public interface ExpertWeights {
    int count();

    int hidden();

    int intermediate();

    /** [2I, H] expert e's gate and up rows in one matrix, or null when they are stored apart. */
    Tensor gateUp(int e);

    /** [I, H] expert e's gate projection (gated FFN, stored apart), else null. */
    Tensor gate(int e);

    /** [I, H] expert e's up projection (gated FFN stored apart), or its input projection (plain FFN). */
    Tensor up(int e);

    /** [H, I] expert e's down projection. */
    Tensor down(int e);

    /**
     * True when every matrix is stored [in, out] instead ({@link TransposedExpertWeights}: gpt-oss's layout), so
     * that the experts multiply x · W rather than x · Wᵀ and the memory-mapped weights need not be copied.
     */
    default boolean transposed() {
        return false;
    }

    /** [2I] bias of {@link #gateUp}, or null. */
    default Tensor gateUpBias(int e) {
        return null;
    }

    /** [I] bias of {@link #gate}, or null. */
    default Tensor gateBias(int e) {
        return null;
    }

    /** [I] bias of {@link #up}, or null. */
    default Tensor upBias(int e) {
        return null;
    }

    /** [H] bias of {@link #down}, or null. */
    default Tensor downBias(int e) {
        return null;
    }
}
