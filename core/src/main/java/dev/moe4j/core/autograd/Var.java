package dev.moe4j.core.autograd;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

/**
 * A value in a computation together with, when gradients flow through it, its gradient. The gradient is an F32
 * tensor of the value's shape, allocated (as zeros) the first time something is added to it, so values that no
 * backward step reaches cost no memory.
 *
 * <p>A {@link #view} shares both value and gradient memory with its source: reshaping is free in both directions.
 */
public class Var {
    private final Tensor value;
    private final boolean requiresGrad;
    private final Var viewOf;
    private Tensor grad;

    public Var(Tensor value, boolean requiresGrad) {
        this(value, requiresGrad, null);
    }

    private Var(Tensor value, boolean requiresGrad, Var viewOf) {
        this.value = value;
        this.requiresGrad = requiresGrad;
        this.viewOf = viewOf;
    }

    /** A value no gradient flows into (inputs, frozen weights, inference). */
    public static Var constant(Tensor value) {
        return new Var(value, false);
    }

    /** The same memory under another shape; gradients added to the view land in the source's gradient. */
    public Var view(int... shape) {
        return new Var(value.reshape(shape), requiresGrad, this);
    }

    public Tensor value() {
        return value;
    }

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** The gradient, allocated as zeros on first use. */
    public Tensor grad() {
        if (!requiresGrad) {
            throw new IllegalStateException("no gradient flows into this value: " + value);
        }
        if (grad == null) {
            grad = viewOf != null ? viewOf.grad().reshape(value.shape()) : newGradient();
        }
        return grad;
    }

    /** Zeros for the gradient, F32 on the value's device (in the memory scope of the pass that needs it). */
    protected Tensor newGradient() {
        return value.device().backend().zeros(DType.F32, value.shape());
    }

    /** True once a gradient has been allocated (something was accumulated or {@link #grad()} was asked for). */
    public boolean hasGrad() {
        return grad != null;
    }

    /** Forgets the gradient; the next backward pass starts from zero. */
    public void zeroGrad() {
        if (viewOf == null && grad != null) {
            grad.fill(0f);
        }
    }

    public int rows() {
        return value.rows();
    }

    public int cols() {
        return value.cols();
    }

    @Override
    public String toString() {
        return "Var[" + value + (requiresGrad ? ", grad" : "") + "]";
    }
}
