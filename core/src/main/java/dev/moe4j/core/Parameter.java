package dev.moe4j.core;

import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.MemoryScope;

import java.util.Objects;

/**
 * A named trainable tensor: a {@link Var} that always takes a gradient, with the name checkpoints, optimisers and
 * reports know it by. Layers expose their weights as parameters so that one optimiser, one checkpoint writer and
 * one gradient check serve every layer, and so that model code can pass them straight to a {@code Graph}. The
 * gradient is F32 of the value's shape, allocated on first use, so inference never pays for it.
 */
public final class Parameter extends Var {
    private final String name;
    private boolean frozen;

    public Parameter(String name, Tensor value) {
        super(Objects.requireNonNull(value, "value"), true);
        this.name = Objects.requireNonNull(name, "name");
    }

    /**
     * Stops gradients flowing into this parameter, as PyTorch's {@code requires_grad_(False)}: the base weights of a
     * model fine-tuned through adapters stay as they are, and no gradient memory is spent on them. Layers consult
     * {@link #requiresGrad()} before they accumulate a parameter's gradient; optimisers skip frozen parameters.
     */
    public Parameter freeze() {
        frozen = true;
        return this;
    }

    @Override
    public boolean requiresGrad() {
        return !frozen;
    }

    /** A parameter's gradient accumulates over micro-batches and outlives every pass: never in a pass's scope. */
    @Override
    protected Tensor newGradient() {
        return MemoryScope.persistent(super::newGradient);
    }

    /** The name relative to its owner (e.g. {@code router.weight}); owners prefix their own path. */
    public String name() {
        return name;
    }

    @Override
    public String toString() {
        return "Parameter[" + name + " " + value() + "]";
    }
}
