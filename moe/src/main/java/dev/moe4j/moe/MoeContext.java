package dev.moe4j.moe;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.expert.Experts;
import dev.moe4j.moe.router.Routing;

/**
 * What a training forward pass keeps for {@link MoeLayer#backward}: the input, the routing, the routed and shared
 * experts' activations and the shared gate. Opaque to callers; a trainer's tape holds it between the passes.
 */
public final class MoeContext {
    final MoeLayer layer;
    final Tensor input;
    final Routing routing;
    final Experts.Trace experts;
    final Experts.Trace shared;
    final float[] sharedGate;

    MoeContext(MoeLayer layer, Tensor input, Routing routing, Experts.Trace experts, Experts.Trace shared,
               float[] sharedGate) {
        this.layer = layer;
        this.input = input;
        this.routing = routing;
        this.experts = experts;
        this.shared = shared;
        this.sharedGate = sharedGate;
    }

    /** The routing decision of that pass. */
    public Routing routing() {
        return routing;
    }
}
