package dev.moe4j.core.autograd;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.Activations;
import dev.moe4j.core.kernels.Attention;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.kernels.RmsNorm;
import dev.moe4j.core.kernels.Rope;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.core.kernels.SwiGLU;
import dev.moe4j.core.kernels.VectorMath;

import java.lang.foreign.MemorySegment;

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

    /** a + b, elementwise over equal shapes (a residual connection). */
    public Var add(Var a, Var b) {
        requireSameSize(a, b, "add");
        Tensor y = Tensor.zeros(a.value().shape());
        VectorMath.add(y, a.value(), b.value());
        Var out = result(y, a, b);
        onBackward(out, () -> {
            if (a.requiresGrad()) {
                VectorMath.addInPlace(a.grad(), out.grad());
            }
            if (b.requiresGrad()) {
                VectorMath.addInPlace(b.grad(), out.grad());
            }
        });
        return out;
    }

    /** x [n, m] + v [m] on every row (a bias). */
    public Var addRowVector(Var x, Var v) {
        Tensor y = x.value().copy();
        VectorMath.addRowVector(y, v.value());
        Var out = result(y, x, v);
        onBackward(out, () -> {
            if (x.requiresGrad()) {
                VectorMath.addInPlace(x.grad(), out.grad());
            }
            if (v.requiresGrad()) {
                VectorMath.addColumnSums(v.grad(), out.grad());
            }
        });
        return out;
    }

    /** a ⊙ b, elementwise over equal shapes. */
    public Var mul(Var a, Var b) {
        requireSameSize(a, b, "mul");
        Tensor y = Tensor.zeros(a.value().shape());
        VectorMath.mul(y, a.value(), b.value());
        Var out = result(y, a, b);
        onBackward(out, () -> {
            Tensor g = out.grad();
            Tensor scratch = Tensor.zeros(g.shape());
            if (a.requiresGrad()) {
                VectorMath.mul(scratch, g, b.value());
                VectorMath.addInPlace(a.grad(), scratch);
            }
            if (b.requiresGrad()) {
                VectorMath.mul(scratch, g, a.value());
                VectorMath.addInPlace(b.grad(), scratch);
            }
        });
        return out;
    }

    /** s · x. */
    public Var scale(Var x, float s) {
        Tensor y = x.value().copy();
        VectorMath.scale(y, s);
        Var out = result(y, x);
        onBackward(out, () -> VectorMath.axpy(s, out.grad(), x.grad()));
        return out;
    }

    /** x [n, m] with row r multiplied by the scalar g[r] (g is [n] or [n, 1]): a per-token gate. */
    public Var scaleRows(Var x, Var g) {
        int n = x.rows(), m = x.cols();
        requireRows(g, n, "scaleRows");
        Tensor y = x.value().copy();
        for (int r = 0; r < n; r++) {
            VectorMath.scale(y.select(r), g.value().getFloat(r));
        }
        Var out = result(y, x, g);
        onBackward(out, () -> {
            Tensor grad = out.grad();
            for (int r = 0; r < n; r++) {
                Tensor gr = grad.select(r);
                if (x.requiresGrad()) {
                    VectorMath.axpy(g.value().getFloat(r), gr, x.grad().select(r));
                }
                if (g.requiresGrad()) {
                    float d = VectorMath.dot(gr, x.value().select(r));
                    g.grad().setFloat(r, g.grad().getFloat(r) + d);
                }
            }
        });
        return out;
    }

    /** Elementwise σ(x). */
    public Var sigmoid(Var x) {
        Tensor y = Tensor.zeros(x.value().shape());
        for (long i = 0; i < y.size(); i++) {
            y.setFloat(i, (float) (1 / (1 + Math.exp(-x.value().getFloat(i)))));
        }
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor g = out.grad(), gx = x.grad();
            for (long i = 0; i < y.size(); i++) {
                float s = y.getFloat(i);
                gx.setFloat(i, gx.getFloat(i) + g.getFloat(i) * s * (1 - s));
            }
        });
        return out;
    }

    /** Elementwise clamp to [−limit, limit] (OLMoE's clip_qkv); no gradient flows where it clamps. */
    public Var clamp(Var x, float limit) {
        Tensor y = x.value().copy();
        for (long i = 0; i < y.size(); i++) {
            y.setFloat(i, Math.max(-limit, Math.min(limit, y.getFloat(i))));
        }
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor g = out.grad(), gx = x.grad(), xv = x.value();
            for (long i = 0; i < y.size(); i++) {
                float v = xv.getFloat(i);
                if (v >= -limit && v <= limit) {
                    gx.setFloat(i, gx.getFloat(i) + g.getFloat(i));
                }
            }
        });
        return out;
    }

    /** An elementwise activation. */
    public Var activation(Activation kind, Var x) {
        Tensor y = Tensor.zeros(x.value().shape());
        Activations.forward(kind, y, x.value());
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor dx = Tensor.zeros(y.shape());
            Activations.backward(kind, dx, out.grad(), x.value());
            VectorMath.addInPlace(x.grad(), dx);
        });
        return out;
    }

    // ---- shape ----

    /** Columns [from, to) of x [n, m] as a new [n, to − from] value (splitting a fused projection). */
    public Var columns(Var x, int from, int to) {
        int n = x.rows(), m = x.cols(), w = to - from;
        if (from < 0 || to > m || w <= 0) {
            throw new IllegalArgumentException("columns [" + from + ", " + to + ") of " + x.value());
        }
        Tensor y = Tensor.zeros(n, w);
        for (int r = 0; r < n; r++) {
            MemorySegment.copy(x.value().segment(), ((long) r * m + from) * 4, y.segment(), (long) r * w * 4, (long) w * 4);
        }
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor g = out.grad(), gx = x.grad();
            for (int r = 0; r < n; r++) {
                VectorMath.axpy(1f, g, (long) r * w, gx, (long) r * m + from, w);
            }
        });
        return out;
    }

    /** [a | b]: rows of a followed by rows of b, column-wise (a [n, p], b [n, q] → [n, p + q]). */
    public Var concatColumns(Var a, Var b) {
        int n = a.rows(), p = a.cols(), q = b.cols();
        if (b.rows() != n) {
            throw new IllegalArgumentException("concatColumns: " + a.value() + " and " + b.value() + " differ in rows");
        }
        Tensor y = Tensor.zeros(n, p + q);
        for (int r = 0; r < n; r++) {
            MemorySegment.copy(a.value().segment(), (long) r * p * 4, y.segment(), (long) r * (p + q) * 4, (long) p * 4);
            MemorySegment.copy(b.value().segment(), (long) r * q * 4, y.segment(), ((long) r * (p + q) + p) * 4, (long) q * 4);
        }
        Var out = result(y, a, b);
        onBackward(out, () -> {
            Tensor g = out.grad();
            for (int r = 0; r < n; r++) {
                if (a.requiresGrad()) {
                    VectorMath.axpy(1f, g, (long) r * (p + q), a.grad(), (long) r * p, p);
                }
                if (b.requiresGrad()) {
                    VectorMath.axpy(1f, g, (long) r * (p + q) + p, b.grad(), (long) r * q, q);
                }
            }
        });
        return out;
    }

    // ---- normalisation, activation, position ----

    /** Root-mean-square normalisation of each row, scaled by {@code weight} (null: no scale). */
    public Var rmsNorm(Var x, Var weight, float eps) {
        Tensor y = Tensor.zeros(x.value().shape());
        RmsNorm.forward(y, x.value(), weight == null ? null : weight.value(), eps);
        Var out = weight == null ? result(y, x) : result(y, x, weight);
        onBackward(out, () -> {
            Tensor dx = Tensor.zeros(y.shape());
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.grad() : null;
            RmsNorm.backward(dx, dWeight, out.grad(), x.value(), weight == null ? null : weight.value(), eps);
            if (x.requiresGrad()) {
                VectorMath.addInPlace(x.grad(), dx);
            }
        });
        return out;
    }

    /** A gated linear unit over separate gate and up projections, [n, I] each. */
    public Var glu(Var gate, Var up, GluParams params) {
        Tensor y = Tensor.zeros(gate.value().shape());
        SwiGLU.forward(y, gate.value(), up.value(), params);
        Var out = result(y, gate, up);
        onBackward(out, () -> {
            Tensor dGate = Tensor.zeros(y.shape()), dUp = Tensor.zeros(y.shape());
            SwiGLU.backward(dGate, dUp, out.grad(), gate.value(), up.value(), params);
            if (gate.requiresGrad()) {
                VectorMath.addInPlace(gate.grad(), dGate);
            }
            if (up.requiresGrad()) {
                VectorMath.addInPlace(up.grad(), dUp);
            }
        });
        return out;
    }

    /** Rotary position embedding of x [tokens, heads·headDim], token t at {@code positions[t]}. */
    public Var rope(Var x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        Tensor y = x.value().copy();
        Rope.forward(y, positions, table, layout, headDim, rotaryDim);
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor dx = out.grad().copy();
            Rope.backward(dx, positions, table, layout, headDim, rotaryDim);
            VectorMath.addInPlace(x.grad(), dx);
        });
        return out;
    }

    // ---- attention ----

    /**
     * Causal attention within each of {@code sequences} equal-length sequences laid end to end in the rows of q, k
     * and v (training and prompt processing). {@code sinks} [heads] may be null.
     */
    public Var attention(Var q, Var k, Var v, int sequences, AttentionSpec spec, Var sinks) {
        int rows = q.rows();
        if (sequences <= 0 || rows % sequences != 0 || k.rows() != rows || v.rows() != rows) {
            throw new IllegalArgumentException("attention: " + rows + " query rows, " + k.rows() + " key rows in " + sequences + " sequences");
        }
        int length = rows / sequences;
        Tensor y = Tensor.zeros(rows, spec.heads() * spec.valueHeadDim());
        Var out = sinks == null ? result(y, q, k, v) : result(y, q, k, v, sinks);
        // Only the backward pass needs each row's log-sum-exp.
        float[] lse = out.requiresGrad() ? new float[rows * spec.heads()] : null;
        Tensor sinkValues = sinks == null ? null : sinks.value();
        for (int b = 0; b < sequences; b++) {
            int from = b * length, to = from + length;
            float[] part = lse == null ? null : new float[length * spec.heads()];
            Attention.forward(y.slice(from, to), part, q.value().slice(from, to), k.value().slice(from, to),
                    v.value().slice(from, to), 0, spec, sinkValues);
            if (part != null) {
                System.arraycopy(part, 0, lse, from * spec.heads(), part.length);
            }
        }
        onBackward(out, () -> {
            Tensor dq = Tensor.zeros(q.value().shape()), dk = Tensor.zeros(k.value().shape()), dv = Tensor.zeros(v.value().shape());
            Tensor dSinks = sinks != null && sinks.requiresGrad() ? Tensor.zeros(spec.heads()) : null;
            for (int b = 0; b < sequences; b++) {
                int from = b * length, to = from + length;
                float[] part = java.util.Arrays.copyOfRange(lse, from * spec.heads(), to * spec.heads());
                Attention.backward(dq.slice(from, to), dk.slice(from, to), dv.slice(from, to), dSinks,
                        out.grad().slice(from, to), q.value().slice(from, to), k.value().slice(from, to),
                        v.value().slice(from, to), y.slice(from, to), part, 0, spec, sinkValues);
            }
            addIfNeeded(q, dq);
            addIfNeeded(k, dk);
            addIfNeeded(v, dv);
            if (dSinks != null) {
                VectorMath.addInPlace(sinks.grad(), dSinks);
            }
        });
        return out;
    }

    /**
     * Attention of new queries, at positions {@code queryStart}.., against the keys and values of a cache that
     * holds positions [0, queryStart + rows): decoding. Inference only.
     */
    public Var attentionWithCache(Var q, Tensor keys, Tensor values, int queryStart, AttentionSpec spec, Var sinks) {
        if (training) {
            throw new IllegalStateException("attention against a KV cache is for inference graphs");
        }
        int visible = queryStart + q.rows();
        Tensor y = Tensor.zeros(q.rows(), spec.heads() * spec.valueHeadDim());
        Attention.forward(y, null, q.value(), keys.slice(0, visible), values.slice(0, visible), queryStart, spec,
                sinks == null ? null : sinks.value());
        return result(y);
    }

    // ---- loss ----

    /**
     * Mean cross-entropy of {@code logits} [n, vocab] against {@code targets} [n]; targets equal to
     * {@link #IGNORE} do not count. Returns a scalar.
     */
    public Var crossEntropy(Var logits, int[] targets) {
        int n = logits.rows(), vocab = logits.cols();
        if (targets.length != n) {
            throw new IllegalArgumentException("crossEntropy: " + targets.length + " targets for " + n + " rows");
        }
        float[] lse = new float[n];
        Softmax.logSumExp(logits.value(), lse);
        double sum = 0;
        int counted = 0;
        for (int i = 0; i < n; i++) {
            if (targets[i] == IGNORE) {
                continue;
            }
            if (targets[i] < 0 || targets[i] >= vocab) {
                throw new IndexOutOfBoundsException("target " + targets[i] + " outside vocabulary of " + vocab);
            }
            sum += lse[i] - logits.value().getFloat((long) i * vocab + targets[i]);
            counted++;
        }
        int count = counted;
        Var out = result(Tensor.vector((float) (count == 0 ? 0 : sum / count)), logits);
        onBackward(out, () -> {
            if (count == 0) {
                return;
            }
            float g = out.grad().getFloat(0) / count;
            Tensor dLogits = Tensor.zeros(n, vocab);
            Softmax.forward(dLogits, logits.value());
            for (int i = 0; i < n; i++) {
                Tensor row = dLogits.select(i);
                if (targets[i] == IGNORE) {
                    row.fill(0f);
                    continue;
                }
                row.setFloat(targets[i], row.getFloat(targets[i]) - 1f);
                VectorMath.scale(row, g);
            }
            VectorMath.addInPlace(logits.grad(), dLogits);
        });
        return out;
    }

    /** The target id that {@link #crossEntropy} skips (PyTorch's ignore_index default). */
    public static final int IGNORE = -100;

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
                VectorMath.axpy(1f, g, (long) i * dim, gt, (long) ids[i] * dim, dim);
            }
        });
        return out;
    }

    // ---- helpers ----

    private static void addIfNeeded(Var x, Tensor gradient) {
        if (x.requiresGrad()) {
            VectorMath.addInPlace(x.grad(), gradient);
        }
    }

    private static void requireRows(Var x, int rows, String op) {
        if (x.value().size() != rows) {
            throw new IllegalArgumentException(op + ": " + x.value() + " does not hold one value per row of " + rows);
        }
    }

    private static void requireSameSize(Var a, Var b, String op) {
        if (a.value().size() != b.value().size()) {
            throw new IllegalArgumentException(op + ": " + a.value() + " and " + b.value() + " differ in size");
        }
    }
}
