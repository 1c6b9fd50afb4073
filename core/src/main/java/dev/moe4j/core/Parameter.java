package dev.moe4j.core;

import java.util.Objects;

/**
 * A named trainable tensor and its gradient. Layers expose their weights as parameters so that one optimiser,
 * one checkpoint writer and one gradient check serve every layer; the gradient is F32 of the value's shape,
 * allocated on the first {@link #grad()} so that inference never pays for it.
 */
public final class Parameter {
    private final String name;
    private final Tensor value;
    private Tensor grad;

    public Parameter(String name, Tensor value) {
        this.name = Objects.requireNonNull(name, "name");
        this.value = Objects.requireNonNull(value, "value");
    }

    /** The name relative to its owner (e.g. {@code router.weight}); owners prefix their own path. */
    public String name() {
        return name;
    }

    public Tensor value() {
        return value;
    }

    /** The gradient accumulator, created as F32 zeros on first use. */
    public Tensor grad() {
        if (grad == null) {
            grad = Tensor.zeros(value.shape());
        }
        return grad;
    }

    /** True once a gradient has been allocated (by a backward pass or a caller). */
    public boolean hasGrad() {
        return grad != null;
    }

    /** Sets the gradient to zero, if one was allocated. */
    public void zeroGrad() {
        if (grad != null) {
            grad.fill(0f);
        }
    }

    @Override
    public String toString() {
        return "Parameter[" + name + " " + value + "]";
    }
}
