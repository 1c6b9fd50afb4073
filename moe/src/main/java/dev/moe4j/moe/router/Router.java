package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;

import java.util.List;
import java.util.Map;
import java.util.random.RandomGenerator;

/**
 * Decides which experts process which tokens, with what weight. A router owns its parameters (the router linear
 * and whatever its gate needs) and computes its own backward: from the gradients at its outputs
 * ({@link RouterGrads}) to its parameters and to its input.
 */
public sealed interface Router permits TopKRouter, ExpertChoiceRouter, SoftMoeRouter {
    /** Routes the tokens x [tokens, hidden]; {@code random} drives training noise only. */
    Routing route(Tensor x, Mode mode, RandomGenerator random);

    /**
     * Adds the router's parameter gradients (through {@link Parameter#grad()}) and adds dL/dx into {@code dx}
     * [tokens, hidden], given the gradients at the router's outputs.
     */
    void backward(Routing routing, Tensor x, RouterGrads grads, Tensor dx);

    List<Parameter> parameters();

    /** State that is saved with the weights but not trained by gradients (selection bias, thresholds). */
    Map<String, Tensor> buffers();
}
