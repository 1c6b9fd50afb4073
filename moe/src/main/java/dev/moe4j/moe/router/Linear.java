package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.kernels.VectorMath;

/** y = x · Wᵀ + b for a router's small output width, with its backward; b may be absent. */
final class Linear {
    private Linear() {
    }

    /** [rows, out] logits of x [rows, in] through weight [out, in] and optional bias [out]. */
    static float[] forward(Tensor x, Parameter weight, Parameter bias) {
        int n = x.rows(), out = weight.value().dim(0);
        float[] y = new float[n * out];
        MatMul.forward(Tensor.of(y, n, out), x, weight.value());
        if (bias != null) {
            VectorMath.addRowVector(Tensor.of(y, n, out), bias.value());
        }
        return y;
    }

    /** Accumulates dW += dyᵀ · x and db += Σ dy, and adds dy · W into dx [rows, in]. */
    static void backward(float[] dy, Tensor x, Parameter weight, Parameter bias, Tensor dx) {
        int n = x.rows(), out = weight.value().dim(0);
        Tensor dyT = Tensor.of(dy, n, out);
        MatMul.backwardWeight(weight.grad(), dyT, x, true);
        if (bias != null) {
            VectorMath.addColumnSums(bias.grad(), dyT);
        }
        MatMul.backwardInput(dx, dyT, weight.value(), true);
    }
}
