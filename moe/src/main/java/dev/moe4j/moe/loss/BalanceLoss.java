package dev.moe4j.moe.loss;

import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.Routing;

/**
 * An auxiliary loss on a router's decisions that keeps experts evenly used (or logits small). Each loss computes
 * its value from a {@link Routing} and adds {@code scale · ∂loss/∂(router outputs)} to the router's gradients;
 * discrete choices (top-k, capacity) are constants, as in every published implementation.
 */
public sealed interface BalanceLoss permits SwitchLoss, ImportanceLoss, LoadLoss, RouterZLoss, SequenceLoss {
    /** A short stable name for logs and reports, e.g. {@code switch}, {@code z}. */
    String name();

    double value(Routing routing);

    void backward(Routing routing, float scale, RouterGrads grads);
}
