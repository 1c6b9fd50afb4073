package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;

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
            Tensor b = bias.value();
            for (int i = 0; i < out; i++) {
                float bi = b.getFloat(i);
                for (int t = 0; t < n; t++) {
                    y[t * out + i] += bi;
                }
            }
        }
        return y;
    }

    /** Accumulates dW += dyᵀ · x and db += Σ dy, and adds dy · W into dx [rows, in]. */
    static void backward(float[] dy, Tensor x, Parameter weight, Parameter bias, Tensor dx) {
        int n = x.rows(), out = weight.value().dim(0);
        Tensor dyT = Tensor.of(dy, n, out);
        MatMul.backwardWeight(weight.grad(), dyT, x, true);
        if (bias != null) {
            Tensor db = bias.grad();
            for (int i = 0; i < out; i++) {
                float s = 0;
                for (int t = 0; t < n; t++) {
                    s += dy[t * out + i];
                }
                db.setFloat(i, db.getFloat(i) + s);
            }
        }
        MatMul.backwardInput(dx, dyT, weight.value(), true);
    }
}
