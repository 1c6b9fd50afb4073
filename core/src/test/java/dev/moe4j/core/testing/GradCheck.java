package dev.moe4j.core.testing;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;

import java.util.List;
import java.util.Random;
import java.util.function.Function;

import static dev.moe4j.core.testing.TensorAssert.assertClose;

/**
 * Checks the backward steps a {@link Graph} records against central finite differences of the same forward.
 *
 * <p>The loss is Σ r ⊙ f(inputs) for a fixed random r, so every output element matters. The forward runs in
 * float32, so the step is large (1e-2) and the tolerance loose (1e-2 relative): this catches wiring mistakes
 * (a missing term, a wrong operand, overwriting instead of adding), which are O(1); the kernels themselves are
 * checked against float64 references in their own tests.
 */
public final class GradCheck {
    private GradCheck() {
    }

    public static void check(Function<Graph, Var> forward, List<Var> inputs, long seed) {
        check(forward, inputs, seed, 1e-2);
    }

    /**
     * With a finite-difference step {@code h} of the caller's choice: a deep stack of operations (a whole model) has
     * more curvature than one operation, and 1e-2's truncation error (falling with h²) can pass 1 % there.
     */
    public static void check(Function<Graph, Var> forward, List<Var> inputs, long seed, double h) {
        var rnd = new Random(seed);
        Graph probe = Graph.inference();
        Tensor shape = forward.apply(probe).value();
        Tensor weights = RandomTensors.normal(rnd, shape.shape());

        Graph g = Graph.training();
        Var y = forward.apply(g);
        Var loss = weightedSum(g, y, weights);
        for (Var input : inputs) {
            input.zeroGrad();
        }
        g.backward(loss);

        for (Var input : inputs) {
            Tensor x = input.value();
            double[] numeric = new double[(int) x.size()];
            for (int i = 0; i < numeric.length; i++) {
                float original = x.getFloat(i);
                x.setFloat(i, original + (float) h);
                double plus = weightedSumValue(forward.apply(Graph.inference()).value(), weights);
                x.setFloat(i, original - (float) h);
                double minus = weightedSumValue(forward.apply(Graph.inference()).value(), weights);
                x.setFloat(i, original);
                numeric[i] = (plus - minus) / (2 * h);
            }
            assertClose(numeric, input.grad(), 1e-2, "gradient of " + input);
        }
    }

    private static Var weightedSum(Graph g, Var y, Tensor weights) {
        Var w = Var.constant(weights.reshape(1, -1));
        return g.matmul(y.view(1, -1), w).view(1);
    }

    private static double weightedSumValue(Tensor y, Tensor weights) {
        double s = 0;
        for (long i = 0; i < y.size(); i++) {
            s += (double) y.getFloat(i) * weights.getFloat(i);
        }
        return s;
    }
}
