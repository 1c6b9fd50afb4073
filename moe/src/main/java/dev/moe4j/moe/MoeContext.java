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
    float[] routerLogitGradient;

    MoeContext(MoeLayer layer, Tensor input, Routing routing, Experts.Trace experts, Experts.Trace shared,
               float[] sharedGate) {
        this.layer = layer;
        this.input = input;
        this.routing = routing;
        this.experts = experts;
        this.shared = shared;
        this.sharedGate = sharedGate;
    }

    /**
     * Adds dL/d router logits [tokens, experts] from a loss computed outside the layer (transformers' balance loss
     * over the router logits of all layers at once); {@link MoeLayer#backward} passes it into the router. Call it
     * before the layer's backward step runs.
     */
    public void addRouterLogitGradient(float[] gradient) {
        int size = routing.tokens() * routing.experts();
        if (gradient.length != size) {
            throw new IllegalArgumentException(gradient.length + " router-logit gradients for " + size + " logits");
        }
        if (routerLogitGradient == null) {
            routerLogitGradient = new float[size];
        }
        for (int i = 0; i < size; i++) {
            routerLogitGradient[i] += gradient[i];
        }
    }

    /** The routing decision of that pass. */
    public Routing routing() {
        return routing;
    }
}
