package dev.moe4j.core.autograd;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;

import java.util.ArrayList;
import java.util.List;

/**
 * The operations model code is written with, and the tape that makes them differentiable.
 *
 * <p>Each operation computes its result with the core kernels at once. In a training graph it also records,
 * when any input needs a gradient, a backward step built from hand-written backward kernels; {@link #backward}
 * replays those steps in reverse. An inference graph records nothing, so the same model code serves
 * {@code generate} and {@code train}. Backward steps add into gradients, so a value used twice receives the sum.
 *
 * <p>Shapes follow the checkpoint layout: activations are [rows, features], weights are [out, in].
 */
public final class Graph {
    private final boolean training;
    private final List<Runnable> tape = new ArrayList<>();

    private Graph(boolean training) {
        this.training = training;
    }

    /** A graph that records backward steps. */
    public static Graph training() {
        return new Graph(true);
    }

    /** A graph that only computes. */
    public static Graph inference() {
        return new Graph(false);
    }

    public boolean isTraining() {
        return training;
    }

    /** A result of an operation over {@code inputs}: it needs a gradient when training and any input does. */
    public Var result(Tensor value, Var... inputs) {
        boolean needsGrad = false;
        if (training) {
            for (Var input : inputs) {
                needsGrad |= input != null && input.requiresGrad();
            }
        }
        return new Var(value, needsGrad);
    }

    /**
     * Records the backward step of an operation whose result is {@code output}; the step runs during
     * {@link #backward} after every step recorded later. Nothing is recorded when no gradient flows.
     */
    public void onBackward(Var output, Runnable step) {
        if (output.requiresGrad()) {
            tape.add(step);
        }
    }

    /** Back-propagates from a scalar {@code loss} (dloss/dloss = 1) through every recorded step, then clears the tape. */
    public void backward(Var loss) {
        if (loss.value().size() != 1) {
            throw new IllegalArgumentException("backward needs a scalar loss, got " + loss.value());
        }
        loss.grad().setFloat(0, loss.grad().getFloat(0) + 1f);
        for (int i = tape.size() - 1; i >= 0; i--) {
            tape.get(i).run();
        }
        tape.clear();
    }

    /** Number of backward steps recorded so far. */
    public int tapeLength() {
        return tape.size();
    }

    // ---- linear algebra ----

    /** x [n, k] · w [m, k]ᵀ → [n, m]. */
    public Var matmul(Var x, Var w) {
        Tensor y = Tensor.zeros(x.rows(), w.rows());
        MatMul.forward(y, x.value(), w.value());
        Var out = result(y, x, w);
        onBackward(out, () -> {
            if (x.requiresGrad()) {
                MatMul.backwardInput(x.grad(), out.grad(), w.value(), true);
            }
            if (w.requiresGrad()) {
                MatMul.backwardWeight(w.grad(), out.grad(), x.value(), true);
            }
        });
        return out;
    }

    /** x · wᵀ + bias, with {@code bias} [m] optional (null). */
    public Var linear(Var x, Var w, Var bias) {
        Var y = matmul(x, w);
        return bias == null ? y : addRowVector(y, bias);
    }

    /** a + b, elementwise over equal shapes. */
    public Var add(Var a, Var b) {
        requireSameSize(a, b, "add");
        Tensor y = Tensor.zeros(a.value().shape());
        long n = y.size();
        Tensor av = a.value(), bv = b.value();
        for (long i = 0; i < n; i++) {
            y.setFloat(i, av.getFloat(i) + bv.getFloat(i));
        }
        Var out = result(y, a, b);
        onBackward(out, () -> {
            if (a.requiresGrad()) {
                accumulate(a.grad(), out.grad());
            }
            if (b.requiresGrad()) {
                accumulate(b.grad(), out.grad());
            }
        });
        return out;
    }

    /** x [n, m] + v [m] added to every row. */
    public Var addRowVector(Var x, Var v) {
        int n = x.rows(), m = x.cols();
        if (v.value().size() != m) {
            throw new IllegalArgumentException("addRowVector: " + v.value() + " does not match rows of " + x.value());
        }
        Tensor y = Tensor.zeros(x.value().shape());
        Tensor xv = x.value(), vv = v.value();
        for (int i = 0; i < n; i++) {
            long row = (long) i * m;
            for (int j = 0; j < m; j++) {
                y.setFloat(row + j, xv.getFloat(row + j) + vv.getFloat(j));
            }
        }
        Var out = result(y, x, v);
        onBackward(out, () -> {
            Tensor g = out.grad();
            if (x.requiresGrad()) {
                accumulate(x.grad(), g);
            }
            if (v.requiresGrad()) {
                Tensor gv = v.grad();
                for (int j = 0; j < m; j++) {
                    double s = 0;
                    for (int i = 0; i < n; i++) {
                        s += g.getFloat((long) i * m + j);
                    }
                    gv.setFloat(j, gv.getFloat(j) + (float) s);
                }
            }
        });
        return out;
    }

    // ---- lookup ----

    /** Rows {@code ids} of {@code table} [vocab, dim] → [ids.length, dim]. */
    public Var embedding(Var table, int[] ids) {
        int dim = table.cols(), vocab = table.rows();
        Tensor y = Tensor.zeros(ids.length, dim);
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IndexOutOfBoundsException("token id " + ids[i] + " outside vocabulary of " + vocab);
            }
            y.select(i).copyFrom(table.value().select(ids[i]));
        }
        Var out = result(y, table);
        onBackward(out, () -> {
            Tensor g = out.grad(), gt = table.grad();
            for (int i = 0; i < ids.length; i++) {
                long src = (long) i * dim, dst = (long) ids[i] * dim;
                for (int j = 0; j < dim; j++) {
                    gt.setFloat(dst + j, gt.getFloat(dst + j) + g.getFloat(src + j));
                }
            }
        });
        return out;
    }

    // ---- helpers ----

    /** target += source, elementwise. */
    static void accumulate(Tensor target, Tensor source) {
        long n = target.size();
        for (long i = 0; i < n; i++) {
            target.setFloat(i, target.getFloat(i) + source.getFloat(i));
        }
    }

    private static void requireSameSize(Var a, Var b, String op) {
        if (a.value().size() != b.value().size()) {
            throw new IllegalArgumentException(op + ": " + a.value() + " and " + b.value() + " differ in size");
        }
    }
}
