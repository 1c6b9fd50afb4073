package dev.moe4j.moe.router;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
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
        int n = x.rows(), out = weight.value().dim(0);
        Backend b = Backend.of(x, weight.value(), bias == null ? null : bias.value());
        Tensor y = b.zeros(DType.F32, n, out);
        b.matmul(y, x, weight.value());
        if (bias != null) {
            b.addRowVector(y, bias.value());
        }
        return b.toHost(y).toFloatArray();
    }

    /** Accumulates dW += dyᵀ · x and db += Σ dy, and adds dy · W into dx [rows, in]. */
    static void backward(float[] dy, Tensor x, Parameter weight, Parameter bias, Tensor dx) {
        int n = x.rows(), out = weight.value().dim(0);
        Backend b = Backend.of(x, weight.value(), dx);
        Tensor dyT = b.upload(Tensor.of(dy, n, out), DType.F32);
        // The router's gradient in F32 throughout, as its forward (x is BF16 on a GPU: widened exactly).
        b.matmulBackwardWeight(weight.grad(), dyT, b.convert(x, DType.F32), true);
        if (bias != null) {
            b.addColumnSums(bias.grad(), dyT);
        }
        b.matmulBackwardInput(dx, dyT, weight.value(), true);
    }
}
