package dev.moe4j.moe;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.loss.AuxLoss;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.stats.RoutingStats;

import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * One forward pass of an {@link MoeLayer}: the output [tokens, hidden], the auxiliary losses (each to be added to
 * the training loss times its coefficient), what the router did (its summary and the full decision, which expert
 * traces, parity checks and model-level losses over all layers read), and what {@link MoeLayer#backward} needs (null
 * after an inference pass).
 *
 * <p>A pass routed on a GPU ({@link dev.moe4j.moe.router.TopKRouter#routeOnDevice}) makes its host {@link Routing},
 * and the losses measured from it, only when they are first asked for, from device memory of the pass: ask inside
 * the {@link MemoryScope} the pass ran in (asking after it closed is refused, since that memory is gone).
 */
public final class MoeResult {
    private final Tensor output;
    private final MoeContext context;
    private final Tensor expertOutputs;
    private Routing routing;
    private List<AuxLoss> losses;
    private Supplier<Routing> pendingRouting;
    private Function<Routing, List<AuxLoss>> pendingLosses;
    private boolean released;

    /**
     * @param expertOutputs [routed rows, hidden] each routed row's expert output before its gate weight, in the order
     *                      of {@code routing().dispatch()} (what expert saliency is measured from); null for Soft MoE
     *                      and where a device's one-pass decoding combined the experts without keeping them apart
     */
    public MoeResult(Tensor output, List<AuxLoss> losses, MoeContext context, Routing routing, Tensor expertOutputs) {
        this.output = output;
        this.losses = losses;
        this.context = context;
        this.routing = routing;
        this.expertOutputs = expertOutputs;
    }

    /**
     * An inference pass whose routing stayed on its device: {@code routing} makes the host's decision when asked
     * for, and {@code losses} the auxiliary losses from it. Both read memory of the scope open now.
     */
    static MoeResult routedOnDevice(Tensor output, Supplier<Routing> routing, Function<Routing, List<AuxLoss>> losses) {
        var result = new MoeResult(output, null, null, null, null);
        result.pendingRouting = routing;
        result.pendingLosses = losses;
        MemoryScope.adopt(() -> result.released = true);
        return result;
    }

    public Tensor output() {
        return output;
    }

    /** The auxiliary losses of the pass (measured when first asked for, after a pass routed on a device). */
    public List<AuxLoss> losses() {
        if (losses == null) {
            losses = pendingLosses.apply(routing());
        }
        return losses;
    }

    /** What {@link MoeLayer#backward} needs; null after an inference pass. */
    public MoeContext context() {
        return context;
    }

    /** The router's decision (copied to the host when first asked for, after a pass routed on a device). */
    public Routing routing() {
        if (routing == null) {
            if (released) {
                throw new IllegalStateException("the routing of an MoE pass on a device is read from the pass's "
                        + "memory: ask for it before its memory scope closes");
            }
            routing = pendingRouting.get();
        }
        return routing;
    }

    /** See the constructor. */
    public Tensor expertOutputs() {
        return expertOutputs;
    }

    /**
     * The router's decision summarised, measured when asked rather than in every pass: its entropy takes a
     * logarithm per token and expert, host work that on a GPU would otherwise hold up the pass.
     */
    public RoutingStats stats() {
        return RoutingStats.of(routing());
    }

    /** Σ coefficient · value over the auxiliary losses. */
    public double auxLoss() {
        double sum = 0;
        for (AuxLoss loss : losses()) {
            sum += loss.weighted();
        }
        return sum;
    }
}
