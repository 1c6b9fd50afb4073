package dev.moe4j.moe.router;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.backend.Backend;

/**
 * y = x · Wᵀ + b for a router's small output width, with its backward; b may be absent. The products run where x
 * and W are (on a GPU the logits then come to the host: tokens × experts is small, and routing decides on the
 * host); the logits and their gradients are host arrays.
 */
final class Linear {
    private Linear() {
    }

    /** [rows, out] logits of x [rows, in] through weight [out, in] and optional bias [out]. */
    static float[] forward(Tensor x, Parameter weight, Parameter bias) {
        return forward(x, weight, bias, null).logits();
    }

    /** Logits, and with an adapter the scale · x · aᵀ [rows, r] that its backward needs (else null). */
    record Output(float[] logits, Tensor lowRank) {
    }

    /** The logits of x through weight + scale · b · a when {@code lora} is given (LoRA on the router), else weight. */
    static Output forward(Tensor x, Parameter weight, Parameter bias, Lora lora) {
        Backend b = Backend.of(x, weight.value(), bias == null ? null : bias.value());
        Tensor y = b.zeros(DType.F32, x.rows(), weight.value().dim(0));
        Tensor t = into(y, x, weight, bias, lora);
        return new Output(b.toHost(y).toFloatArray(), t);
    }

    /** The F32 logits [rows, out] left where x is (on a GPU: for routing there, without a trip to the host). */
    static Tensor logits(Tensor x, Parameter weight, Parameter bias, Lora lora) {
        Backend b = Backend.of(x, weight.value(), bias == null ? null : bias.value());
        Tensor y = b.empty(DType.F32, x.rows(), weight.value().dim(0)); // the product writes every value
        into(y, x, weight, bias, lora);
        return y;
    }

    /** y = x · (W + scale · b · a)ᵀ + bias; returns the adapter's scale · x · aᵀ, or null without one. */
    private static Tensor into(Tensor y, Tensor x, Parameter weight, Parameter bias, Lora lora) {
        Backend b = Backend.of(y);
        b.matmul(y, x, weight.value());
        Tensor t = lora == null ? null : b.lowRankAdd(y, x, lora.a().value(), lora.b().value(), lora.scale());
        if (bias != null) {
            b.addRowVector(y, bias.value());
        }
        return t;
    }

    /**
     * Accumulates dW += dyᵀ · x and db += Σ dy (where they take gradients), and adds dy · W into dx [rows, in] unless
     * dx is null (the gradient stopped at x).
     */
    static void backward(float[] dy, Tensor x, Parameter weight, Parameter bias, Tensor dx) {
        backward(dy, x, weight, bias, null, null, dx);
    }

    /** As {@link #backward(float[], Tensor, Parameter, Parameter, Tensor)}, through the adapter too when given. */
    static void backward(float[] dy, Tensor x, Parameter weight, Parameter bias, Lora lora, Tensor lowRank, Tensor dx) {
        int n = x.rows(), out = weight.value().dim(0);
        Backend b = Backend.of(x, weight.value(), dx);
        Tensor dyT = b.upload(Tensor.of(dy, n, out), DType.F32);
        if (weight.requiresGrad()) {
            // The router's gradient in F32 throughout, as its forward (x is BF16 on a GPU: widened exactly).
            b.matmulBackwardWeight(weight.grad(), dyT, b.convert(x, DType.F32), true);
        }
        if (bias != null && bias.requiresGrad()) {
            b.addColumnSums(bias.grad(), dyT);
        }
        if (dx != null) {
            b.matmulBackwardInput(dx, dyT, weight.value(), true);
        }
        if (lora != null) {
            b.lowRankBackward(dx, lora.a().requiresGrad() ? lora.a().grad() : null,
                    lora.b().requiresGrad() ? lora.b().grad() : null, dyT, x, lowRank, lora.a().value(),
                    lora.b().value(), lora.scale());
        }
    }
}
