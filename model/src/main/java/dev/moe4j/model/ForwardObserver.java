package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.dispatch.Dispatch;

/**
 * Hears what a forward pass computes, for parity checks against reference dumps, expert traces and the
 * per-token expert colouring. Every method has a no-op default; tensors passed in are only valid during the call.
 */
public interface ForwardObserver {
    /**
     * The residual stream: {@code index} 0 is the embedding output, i = 1..L the output of decoder layer i − 1,
     * and the last call (index L) carries the final norm's output, as Hugging Face's {@code hidden_states}.
     */
    default void onHiddenState(int index, Tensor hidden) {
    }

    /** The router logits [tokens, experts] of decoder layer {@code layer} (an MoE layer). */
    default void onRouterLogits(int layer, Tensor logits) {
    }

    /**
     * The routing of one token in decoder layer {@code layer}: the experts it was sent to, in the router's
     * ranking order (first = highest score), and their gate weights.
     */
    default void onRouting(int layer, int position, int[] experts, float[] weights) {
    }

    /**
     * The routed experts' outputs of decoder layer {@code layer}: row r of {@code outputs} [rows, hidden] is expert
     * {@code dispatch.expertOfRows()[r]}'s output for token {@code dispatch.token()[r]} of the pass (its gate weight
     * {@code dispatch.weight()[r]} not yet applied). Not heard where the layer did not keep them apart (Soft MoE, a
     * device's one-pass decoding).
     */
    default void onExpertOutputs(int layer, Dispatch dispatch, Tensor outputs) {
    }
}
