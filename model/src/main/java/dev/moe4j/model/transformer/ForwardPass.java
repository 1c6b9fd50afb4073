package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Var;
import dev.moe4j.moe.MoeResult;

import java.util.List;

/**
 * What a forward pass of a {@link Transformer} produced: the logits [rows, vocab] as a value of its graph, and
 * each MoE layer's pass in layer order (output, auxiliary losses with their gradients already part of the graph,
 * routing decision and statistics).
 *
 * @param moeLayers the decoder-layer index of each entry of {@code moe}
 */
public record ForwardPass(Var logits, List<MoeResult> moe, List<Integer> moeLayers) {
    public ForwardPass {
        moe = List.copyOf(moe);
        moeLayers = List.copyOf(moeLayers);
    }

    /** Σ over the MoE layers of Σ coefficient · value of their auxiliary losses, as configured in the MoeConfig. */
    public double auxLoss() {
        return moe.stream().mapToDouble(MoeResult::auxLoss).sum();
    }
}
