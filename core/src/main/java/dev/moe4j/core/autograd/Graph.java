package dev.moe4j.core.autograd;

import dev.moe4j.core.DType;
import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;

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
 *
 * <p>The numbers are computed by the {@link Backend} of the operands' device, so the same model code runs on the CPU
 * or, with its weights on a GPU, there. Device memory an operation allocates belongs to the
 * {@link dev.moe4j.core.backend.MemoryScope} open around the pass.
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

    /** x [n, k] · w [m, k]ᵀ → [n, m], in the backend's activation type. */
    public Var matmul(Var x, Var w) {
        return matmul(x, w, Backend.of(x.value(), w.value()).activationType());
    }

    /**
     * x [n, k] · w [m, k]ᵀ → [n, m] as {@code type}: F32 where the product is a result that should not be rounded to
     * a GPU's BF16 activations (a model's logits), the accumulation being F32 on every device.
     */
    public Var matmul(Var x, Var w, DType type) {
        Backend b = Backend.of(x.value(), w.value());
        Tensor y = b.empty(type, x.rows(), w.rows());
        b.matmul(y, x.value(), w.value());
        Var out = result(y, x, w);
        onBackward(out, () -> {
            if (x.requiresGrad()) {
                b.matmulBackwardInput(x.grad(), out.grad(), w.value(), true);
            }
            if (w.requiresGrad()) {
                b.matmulBackwardWeight(w.grad(), out.grad(), x.value(), true);
            }
        });
        return out;
    }

    /** x · wᵀ + bias, with {@code bias} [m] optional (null). */
    public Var linear(Var x, Var w, Var bias) {
        Var y = matmul(x, w);
        return bias == null ? y : addRowVector(y, bias);
    }

    /**
     * x · (W + scale · b · a)ᵀ + bias with W frozen or not: a linear map with a LoRA adapter, as one operation whose
     * backward step adds into x's, W's (when it takes a gradient), a's and b's gradients. {@code lora} may be null
     * (a plain {@link #linear}).
     */
    public Var linear(Var x, Var w, Var bias, Lora lora) {
        if (lora == null) {
            return linear(x, w, bias);
        }
        Var a = lora.a(), up = lora.b();
        if (a.cols() != x.cols() || up.rows() != w.rows()) {
            throw new IllegalArgumentException("linear: adapter " + a.value() + ", " + up.value() + " does not fit "
                    + w.value());
        }
        Backend be = Backend.of(x.value(), w.value(), a.value(), up.value());
        Tensor y = be.empty(be.activationType(), x.rows(), w.rows());
        be.matmul(y, x.value(), w.value());
        Tensor t = be.lowRankAdd(y, x.value(), a.value(), up.value(), lora.scale());
        Var out = result(y, x, w, a, up);
        onBackward(out, () -> {
            Tensor dy = out.grad();
            if (x.requiresGrad()) {
                be.matmulBackwardInput(x.grad(), dy, w.value(), true);
            }
            if (w.requiresGrad()) {
                be.matmulBackwardWeight(w.grad(), dy, x.value(), true);
            }
            be.lowRankBackward(gradIfNeeded(x), gradIfNeeded(a), gradIfNeeded(up), dy, x.value(), t, a.value(),
                    up.value(), lora.scale());
        });
        return bias == null ? out : addRowVector(out, bias);
    }

    /**
     * a + b, elementwise over equal shapes (a residual connection). The sum is F32 on every device: the residual
     * stream keeps its precision where a GPU holds the other activations in BF16, so that routers and norms read
     * it unrounded.
     */
    public Var add(Var a, Var b) {
        requireSameSize(a, b, "add");
        Backend be = Backend.of(a.value(), b.value());
        Tensor y = be.empty(DType.F32, a.value().shape());
        be.add(y, a.value(), b.value());
        Var out = result(y, a, b);
        onBackward(out, () -> {
            if (a.requiresGrad()) {
                be.addInPlace(a.grad(), out.grad());
            }
            if (b.requiresGrad()) {
                be.addInPlace(b.grad(), out.grad());
            }
        });
        return out;
    }

    /** x [n, m] + v [m] on every row (a bias). */
    public Var addRowVector(Var x, Var v) {
        Backend b = Backend.of(x.value(), v.value());
        Tensor y = b.copyOf(x.value());
        b.addRowVector(y, v.value());
        Var out = result(y, x, v);
        onBackward(out, () -> {
            if (x.requiresGrad()) {
                b.addInPlace(x.grad(), out.grad());
            }
            if (v.requiresGrad()) {
                b.addColumnSums(v.grad(), out.grad());
            }
        });
        return out;
    }

    /** a ⊙ b, elementwise over equal shapes. */
    public Var mul(Var a, Var b) {
        requireSameSize(a, b, "mul");
        Backend be = Backend.of(a.value(), b.value());
        Tensor y = be.empty(be.activationType(), a.value().shape());
        be.mul(y, a.value(), b.value());
        Var out = result(y, a, b);
        onBackward(out, () -> {
            Tensor g = out.grad();
            Tensor scratch = be.zeros(g.dtype(), g.shape());
            if (a.requiresGrad()) {
                be.mul(scratch, g, b.value());
                be.addInPlace(a.grad(), scratch);
            }
            if (b.requiresGrad()) {
                be.mul(scratch, g, a.value());
                be.addInPlace(b.grad(), scratch);
            }
        });
        return out;
    }

    /** s · x. */
    public Var scale(Var x, float s) {
        Backend b = Backend.of(x.value());
        Tensor y = b.copyOf(x.value());
        b.scale(y, s);
        Var out = result(y, x);
        onBackward(out, () -> b.axpy(s, out.grad(), x.grad()));
        return out;
    }

    /** x [n, m] with row r multiplied by the scalar g[r] (g is [n] or [n, 1]): a per-token gate. */
    public Var scaleRows(Var x, Var g) {
        int n = x.rows();
        requireRows(g, n, "scaleRows");
        Backend b = Backend.of(x.value(), g.value());
        Tensor y = b.empty(b.activationType(), x.value().shape());
        b.scaleRows(y, x.value(), g.value());
        Var out = result(y, x, g);
        onBackward(out, () -> b.scaleRowsBackward(x.requiresGrad() ? x.grad() : null,
                g.requiresGrad() ? g.grad() : null, out.grad(), x.value(), g.value()));
        return out;
    }

    /** Elementwise σ(x). */
    public Var sigmoid(Var x) {
        Backend b = Backend.of(x.value());
        Tensor y = b.empty(b.activationType(), x.value().shape());
        b.sigmoid(y, x.value());
        Var out = result(y, x);
        onBackward(out, () -> b.sigmoidBackward(x.grad(), out.grad(), y));
        return out;
    }

    /** Elementwise clamp to [−limit, limit] (OLMoE's clip_qkv); no gradient flows where it clamps. */
    public Var clamp(Var x, float limit) {
        Backend b = Backend.of(x.value());
        Tensor y = b.empty(b.activationType(), x.value().shape());
        b.clamp(y, x.value(), limit);
        Var out = result(y, x);
        onBackward(out, () -> b.clampBackward(x.grad(), out.grad(), x.value(), limit));
        return out;
    }

    /** An elementwise activation. */
    public Var activation(Activation kind, Var x) {
        Backend b = Backend.of(x.value());
        Tensor y = b.empty(b.activationType(), x.value().shape());
        b.activation(kind, y, x.value());
        Var out = result(y, x);
        onBackward(out, () -> b.activationBackward(kind, x.grad(), out.grad(), x.value()));
        return out;
    }

    // ---- shape ----

    /** Columns [from, to) of x [n, m] as a new [n, to − from] value (splitting a fused projection). */
    public Var columns(Var x, int from, int to) {
        int n = x.rows(), m = x.cols(), w = to - from;
        if (from < 0 || to > m || w <= 0) {
            throw new IllegalArgumentException("columns [" + from + ", " + to + ") of " + x.value());
        }
        Backend b = Backend.of(x.value());
        Tensor y = b.empty(x.value().dtype(), n, w);
        b.copyColumns(y, 0, x.value(), from, w, false);
        Var out = result(y, x);
        onBackward(out, () -> b.copyColumns(x.grad(), from, out.grad(), 0, w, true));
        return out;
    }

    /** Rows [from, to) of x as a value of their own (one image's patches of a batch). */
    public Var rows(Var x, int from, int to) {
        if (from < 0 || to > x.rows() || from >= to) {
            throw new IllegalArgumentException("rows [" + from + ", " + to + ") of " + x.value());
        }
        Backend b = Backend.of(x.value());
        Tensor y = b.copyOf(x.value().slice(from, to));
        Var out = result(y, x);
        onBackward(out, () -> b.addInPlace(x.grad().slice(from, to), out.grad()));
        return out;
    }

    /** The rows of {@code parts} one after another (parts of equal width). */
    public Var concatRows(List<Var> parts) {
        int m = parts.getFirst().cols(), n = 0;
        for (Var p : parts) {
            if (p.cols() != m) {
                throw new IllegalArgumentException("concatRows: " + p.value() + " is not " + m + " wide");
            }
            n += p.rows();
        }
        Backend b = Backend.of(parts.getFirst().value());
        Tensor y = b.zeros(DType.F32, n, m);
        int at = 0;
        for (Var p : parts) {
            b.addInPlace(y.slice(at, at + p.rows()), p.value());
            at += p.rows();
        }
        Var out = result(y, parts.toArray(Var[]::new));
        onBackward(out, () -> {
            int from = 0;
            for (Var p : parts) {
                if (p.requiresGrad()) {
                    b.addInPlace(p.grad(), out.grad().slice(from, from + p.rows()));
                }
                from += p.rows();
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
        Backend be = Backend.of(a.value(), b.value());
        Tensor y = be.empty(a.value().dtype(), n, p + q);
        be.copyColumns(y, 0, a.value(), 0, p, false);
        be.copyColumns(y, p, b.value(), 0, q, false);
        Var out = result(y, a, b);
        onBackward(out, () -> {
            Tensor g = out.grad();
            if (a.requiresGrad()) {
                be.copyColumns(a.grad(), 0, g, 0, p, true);
            }
            if (b.requiresGrad()) {
                be.copyColumns(b.grad(), 0, g, p, q, true);
            }
        });
        return out;
    }

    /**
     * The mean of each of {@code groups} equal runs of consecutive rows of x [groups·r, m] → [groups, m]: global
     * average pooling of each image's patches (or of any sequence's positions) before a classifier.
     */
    public Var meanOfGroups(Var x, int groups) {
        int n = x.rows(), m = x.cols();
        if (groups <= 0 || n % groups != 0) {
            throw new IllegalArgumentException("meanOfGroups: " + n + " rows do not split into " + groups + " groups");
        }
        int size = n / groups;
        float inv = 1f / size;
        Backend b = Backend.of(x.value());
        Tensor y = b.zeros(DType.F32, groups, m);
        for (int i = 0; i < groups; i++) {
            b.addColumnSums(y.slice(i, i + 1).reshape(m), x.value().slice(i * size, (i + 1) * size));
        }
        b.scale(y, inv);
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor share = b.copyOf(out.grad());
            b.scale(share, inv);
            for (int i = 0; i < groups; i++) {
                b.addRowVector(x.grad().slice(i * size, (i + 1) * size), share.slice(i, i + 1).reshape(m));
            }
        });
        return out;
    }

    // ---- normalisation, activation, position ----

    /**
     * Root-mean-square normalisation of each row, scaled by {@code weight} (null: no scale). The result has the
     * input's precision: F32 from the residual stream (what routers read), the activation dtype otherwise.
     */
    public Var rmsNorm(Var x, Var weight, float eps) {
        Backend b = Backend.of(x.value(), weight == null ? null : weight.value());
        Tensor y = b.empty(x.value().dtype() == DType.F32 ? DType.F32 : b.activationType(), x.value().shape());
        b.rmsNorm(y, x.value(), weight == null ? null : weight.value(), eps);
        Var out = weight == null ? result(y, x) : result(y, x, weight);
        onBackward(out, () -> {
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.grad() : null;
            b.rmsNormBackward(x.requiresGrad() ? x.grad() : null, dWeight, out.grad(), x.value(),
                    weight == null ? null : weight.value(), eps);
        });
        return out;
    }

    /** A gated linear unit over separate gate and up projections, [n, I] each. */
    public Var glu(Var gate, Var up, GluParams params) {
        Backend b = Backend.of(gate.value(), up.value());
        Tensor y = b.empty(b.activationType(), gate.value().shape());
        b.glu(y, gate.value(), up.value(), params);
        Var out = result(y, gate, up);
        onBackward(out, () -> b.gluBackward(gate.requiresGrad() ? gate.grad() : null,
                up.requiresGrad() ? up.grad() : null, out.grad(), gate.value(), up.value(), params));
        return out;
    }

    /** Rotary position embedding of x [tokens, heads·headDim], token t at {@code positions[t]}. */
    public Var rope(Var x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        Backend b = Backend.of(x.value());
        Tensor y = b.copyOf(x.value());
        b.rope(y, positions, table, layout, headDim, rotaryDim);
        Var out = result(y, x);
        onBackward(out, () -> {
            Tensor dx = b.copyOf(out.grad());
            b.ropeBackward(dx, positions, table, layout, headDim, rotaryDim);
            b.addInPlace(x.grad(), dx);
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
        Tensor sinkValues = sinks == null ? null : sinks.value();
        Backend b = Backend.of(q.value(), k.value(), v.value(), sinkValues);
        Tensor y = b.empty(b.activationType(), rows, spec.heads() * spec.valueHeadDim());
        Var out = sinks == null ? result(y, q, k, v) : result(y, q, k, v, sinks);
        Object saved = b.attention(y, q.value(), k.value(), v.value(), sequences, spec, sinkValues, out.requiresGrad());
        onBackward(out, () -> b.attentionBackward(saved, gradIfNeeded(q), gradIfNeeded(k), gradIfNeeded(v),
                sinks != null ? gradIfNeeded(sinks) : null, out.grad(), q.value(), k.value(), v.value(), y,
                sequences, spec, sinkValues));
        return out;
    }

    /**
     * Attention of new queries against KV caches (decoding): rows [rowStarts[i], rowStarts[i + 1]) are new queries of
     * sequence i at positions queryStarts[i].., whose cache keys[i] and values[i] hold positions
     * [0, queryStarts[i] + its rows), in pieces where the cache is paged. One sequence, or several fed together
     * (batched decoding). Inference only.
     */
    public Var attentionWithCaches(Var q, List<PagedRows> keys, List<PagedRows> values, int[] queryStarts,
                                   int[] rowStarts, AttentionSpec spec, Var sinks) {
        if (training) {
            throw new IllegalStateException("attention against a KV cache is for inference graphs");
        }
        Tensor sinkValues = sinks == null ? null : sinks.value();
        Backend b = Backend.of(q.value(), keys.getFirst().pieces().getFirst(), values.getFirst().pieces().getFirst(),
                sinkValues);
        Tensor y = b.empty(b.activationType(), q.rows(), spec.heads() * spec.valueHeadDim());
        for (int i = 0; i < queryStarts.length; i++) {
            int from = rowStarts[i], to = rowStarts[i + 1];
            if (keys.get(i).rows() != queryStarts[i] + to - from) {
                throw new IllegalArgumentException("sequence " + i + "'s cache holds " + keys.get(i).rows()
                        + " positions, its queries need " + (queryStarts[i] + to - from));
            }
            b.attentionWithCache(y.slice(from, to), q.value().slice(from, to), keys.get(i), values.get(i),
                    queryStarts[i], spec, sinkValues);
        }
        return result(y);
    }

    // ---- loss ----

    /**
     * Mean cross-entropy of {@code logits} [n, vocab] against {@code targets} [n]; targets equal to
     * {@link #IGNORE} do not count. Returns a scalar (in host memory, wherever the logits are).
     */
    public Var crossEntropy(Var logits, int[] targets) {
        int n = logits.rows(), vocab = logits.cols();
        if (targets.length != n) {
            throw new IllegalArgumentException("crossEntropy: " + targets.length + " targets for " + n + " rows");
        }
        for (int target : targets) {
            if (target != IGNORE && (target < 0 || target >= vocab)) {
                throw new IndexOutOfBoundsException("target " + target + " outside vocabulary of " + vocab);
            }
        }
        Backend b = Backend.of(logits.value());
        Backend.CrossEntropy ce = b.crossEntropy(logits.value(), targets, IGNORE);
        int count = ce.counted();
        Var out = result(Tensor.vector(ce.loss()), logits);
        onBackward(out, () -> {
            if (count == 0) {
                return;
            }
            float g = out.grad().getFloat(0) / count;
            b.crossEntropyBackward(logits.grad(), ce, logits.value(), targets, IGNORE, g);
        });
        return out;
    }

    /** The target id that {@link #crossEntropy} skips (PyTorch's ignore_index default). */
    public static final int IGNORE = -100;

    // ---- lookup ----

    /** Rows {@code ids} of {@code table} [vocab, dim] → [ids.length, dim]. */
    public Var embedding(Var table, int[] ids) {
        int dim = table.cols(), vocab = table.rows();
        for (int id : ids) {
            if (id < 0 || id >= vocab) {
                throw new IndexOutOfBoundsException("token id " + id + " outside vocabulary of " + vocab);
            }
        }
        Backend b = Backend.of(table.value());
        Tensor y = b.empty(b.activationType(), ids.length, dim);
        b.embedding(y, table.value(), ids);
        Var out = result(y, table);
        onBackward(out, () -> b.embeddingBackward(table.grad(), out.grad(), ids));
        return out;
    }

    // ---- helpers ----

    private static Tensor gradIfNeeded(Var x) {
        return x.requiresGrad() ? x.grad() : null;
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
