package dev.moe4j.moe;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.loss.AuxLoss;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.stats.RoutingStats;

import java.util.List;

/**
 * One forward pass of an {@link MoeLayer}: the output [tokens, hidden], the auxiliary losses (each to be added
 * to the training loss times its coefficient), what the router did (its summary and the full decision, which
 * expert traces, parity checks and model-level losses over all layers read), and what {@link MoeLayer#backward}
 * needs (null after an inference pass).
 *
 * @param expertOutputs [routed rows, hidden] each routed row's expert output before its gate weight, in the order of
 *                      {@code routing().dispatch()} (what expert saliency is measured from); null for Soft MoE and
 *                      where a device's one-pass decoding combined the experts without keeping them apart
 */
public record MoeResult(Tensor output, List<AuxLoss> losses, MoeContext context, Routing routing,
                        Tensor expertOutputs) {
    /**
     * The router's decision summarised, measured when asked rather than in every pass: its entropy takes a
     * logarithm per token and expert, host work that on a GPU would otherwise hold up the pass.
     */
    public RoutingStats stats() {
        return RoutingStats.of(routing);
    }

    /** Σ coefficient · value over the auxiliary losses. */
    public double auxLoss() {
        double sum = 0;
        for (AuxLoss loss : losses) {
            sum += loss.weighted();
        }
        return sum;
    }
}
