package dev.moe4j.core.autograd;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.UnaryOperator;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The LoRA linear operation against its definition in float64: y = x · (W + s · b · a)ᵀ + bias, and the gradients
 * of Σ r ⊙ y with respect to x, a and b by central differences of that float64 forward.
 */
class LoraLinearTest {
    static final int N = 5, IN = 7, OUT = 6, R = 3;
    static final float SCALE = 2.5f;

    private final Random rnd = new Random(3);
    private final Tensor xs = RandomTensors.normal(rnd, N, IN), ws = RandomTensors.normal(rnd, OUT, IN);
    private final Tensor as = RandomTensors.normal(rnd, R, IN), bs = RandomTensors.normal(rnd, OUT, R);
    private final Tensor bias = RandomTensors.normal(rnd, OUT), r = RandomTensors.normal(rnd, N, OUT);

    /** y of the definition, in float64, with one of the operands replaced by {@code probe}. */
    private double[] reference(double[] x, double[] w, double[] a, double[] b) {
        double[] delta = Reference.matmul(b, a, OUT, R, IN);
        double[] effective = new double[OUT * IN];
        for (int i = 0; i < effective.length; i++) {
            effective[i] = w[i] + SCALE * delta[i];
        }
        double[] y = Reference.matmulXWt(x, effective, N, IN, OUT);
        double[] bv = Reference.values(bias);
        for (int i = 0; i < y.length; i++) {
            y[i] += bv[i % OUT];
        }
        return y;
    }

    @Test
    void forwardIsTheBaseProductPlusTheScaledLowRankProduct() {
        var lora = new Lora(new Parameter("a", as), new Parameter("b", bs), SCALE);
        Var y = Graph.inference().linear(Var.constant(xs), Var.constant(ws), Var.constant(bias), lora);
        double[] expected = reference(Reference.values(xs), Reference.values(ws), Reference.values(as),
                Reference.values(bs));
        assertClose(expected, y.value(), 1e-6, "y");
    }

    @Test
    void gradientsOfInputAndAdapterMatchFloat64FiniteDifferencesAndTheFrozenWeightTakesNone() {
        var x = new Var(xs.copy(), true);
        var w = new Parameter("w", ws.copy()).freeze();
        var a = new Parameter("a", as.copy());
        var b = new Parameter("b", bs.copy());
        Graph g = Graph.training();
        Var y = g.linear(x, w, Var.constant(bias), new Lora(a, b, SCALE));
        Var loss = g.matmul(y.view(1, N * OUT), Var.constant(r.reshape(1, N * OUT))).view(1);
        g.backward(loss);

        double[] x0 = Reference.values(xs), w0 = Reference.values(ws), a0 = Reference.values(as),
                b0 = Reference.values(bs), dy = Reference.values(r);
        double h = 1e-6;
        check(p -> reference(p, w0, a0, b0), x0, dy, h, x, "dx");
        check(p -> reference(x0, w0, p, b0), a0, dy, h, a, "da");
        check(p -> reference(x0, w0, a0, p), b0, dy, h, b, "db");
        assertFalse(w.hasGrad(), "a frozen weight is given no gradient");
        assertTrue(a.hasGrad() && b.hasGrad());
    }

    @Test
    void aTrainableBaseWeightStillTakesItsGradient() {
        var w = new Parameter("w", ws.copy());
        var a = new Parameter("a", as.copy()).freeze();
        var b = new Parameter("b", bs.copy()).freeze();
        Graph g = Graph.training();
        Var y = g.linear(Var.constant(xs), w, null, new Lora(a, b, SCALE));
        g.backward(g.matmul(y.view(1, N * OUT), Var.constant(r.reshape(1, N * OUT))).view(1));
        double[] expected = Reference.matmul(Reference.transpose(Reference.values(r), N, OUT), Reference.values(xs),
                OUT, N, IN);
        assertClose(expected, w.grad(), 1e-6, "dW = dyᵀ · x");
        assertFalse(a.hasGrad() || b.hasGrad(), "frozen adapters are given no gradient");
    }

    private static void check(UnaryOperator<double[]> f, double[] at, double[] dy, double h, Var v, String what) {
        assertClose(Reference.gradient(f, at, dy, h), v.grad(), 1e-5, what);
    }
}
