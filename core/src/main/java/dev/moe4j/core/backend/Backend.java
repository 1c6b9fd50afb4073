package dev.moe4j.core.backend;

import dev.moe4j.core.DType;
import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;

/**
 * The numeric work of {@code Graph} and of the MoE layer, on one {@link Device}: the model code is written once and
 * each operation runs where its operands live. {@link CpuBackend} is the core kernels themselves; a GPU module
 * supplies another.
 *
 * <p>Operations write into tensors the caller allocated ({@link #activations}, {@link #zeros}), as the core kernels
 * do. Backward operations take the gradients to add into, or null where no gradient is wanted. Activations are in
 * {@link #activationType()} (F32 on the CPU; a GPU keeps BF16, or F32 when opened in F32 precision); gradients of
 * graph values are F32 on every device.
 * Index arrays (token ids, positions, permutations) and per-row scalars are host arrays: they are small, and
 * routing decides them on the host; a backend that can route itself ({@link #routeTopK}) keeps a decoding step's
 * choices on its device instead.
 */
public interface Backend {
    /** The device this backend computes on. */
    Device device();

    /** The dtype new activations take: F32 on the CPU, BF16 on a GPU (F32 in its F32 precision). */
    DType activationType();

    /** The backend of tensors, which must all live on one device (null entries are skipped). */
    static Backend of(Tensor... tensors) {
        Device device = null;
        for (Tensor t : tensors) {
            if (t == null) {
                continue;
            }
            if (device == null) {
                device = t.device();
            } else if (t.device() != device) {
                throw new IllegalArgumentException("operands on different devices: " + device.name() + " and "
                        + t.device().name() + " (" + t + "); move the model and its inputs to one device");
            }
        }
        return device == null ? CpuBackend.INSTANCE : device.backend();
    }

    // ---- memory ----

    /** A new tensor of zeros on this device. */
    Tensor zeros(DType dtype, int... shape);

    /**
     * A new tensor whose every element the caller writes before reading it (a device need not clear it first; on
     * the heap it is zeros anyway).
     */
    default Tensor empty(DType dtype, int... shape) {
        return zeros(dtype, shape);
    }

    /** A new tensor of zeros in the activation dtype. */
    default Tensor activations(int... shape) {
        return zeros(activationType(), shape);
    }

    /** A new tensor on this device with the same dtype, shape and values. */
    Tensor copyOf(Tensor t);

    /** Copies between tensors of equal dtype and size, either of which may be in host memory. */
    void copy(Tensor dst, Tensor src);

    /** The values of a tensor of this device as a new host tensor (a host tensor is returned as it is). */
    Tensor toHost(Tensor t);

    /** A copy of a host tensor on this device, converted to {@code dtype} (the host tensor itself on the CPU when it has that dtype). */
    Tensor upload(Tensor host, DType dtype);

    /** x in {@code dtype}: x itself when it has that dtype, else a converted copy on the same device. */
    Tensor convert(Tensor x, DType dtype);

    /** Sets every element. */
    void fill(Tensor t, float value);

    // ---- products: weights are [out, in], as checkpoints store them ----

    /** y [n, m] = x [n, k] · w [m, k]ᵀ. */
    void matmul(Tensor y, Tensor x, Tensor w);

    /** y [n, m] = a [n, k] · b [k, m] (weights stored [in, out]). */
    void multiply(Tensor y, Tensor a, Tensor b);

    /** dx (+)= dy · w. */
    void matmulBackwardInput(Tensor dx, Tensor dy, Tensor w, boolean accumulate);

    /** dw (+)= dyᵀ · x. */
    void matmulBackwardWeight(Tensor dw, Tensor dy, Tensor x, boolean accumulate);

    /**
     * y += scale · (x · aᵀ) · bᵀ: a low-rank path beside a product with a frozen weight (LoRA, a [r, k] and b [m, r]
     * for y [n, m] and x [n, k]). Returns scale · x · aᵀ [n, r] in F32, which {@link #lowRankBackward} needs.
     */
    default Tensor lowRankAdd(Tensor y, Tensor x, Tensor a, Tensor b, float scale) {
        Tensor t = zeros(DType.F32, x.rows(), a.rows());
        matmul(t, x, a);
        scale(t, scale);
        Tensor u = zeros(y.dtype(), y.rows(), y.cols());
        matmul(u, t, b);
        addInPlace(y, u);
        return t;
    }

    /**
     * The gradients of {@link #lowRankAdd} given dy and its saved {@code t} = scale · x · aᵀ: db += dyᵀ · t,
     * da += scale · (dy · b)ᵀ · x and dx += scale · (dy · b) · a. Any of dx, da and db may be null.
     */
    default void lowRankBackward(Tensor dx, Tensor da, Tensor db, Tensor dy, Tensor x, Tensor t, Tensor a, Tensor b,
                                 float scale) {
        if (db != null) {
            matmulBackwardWeight(db, dy, t, true);
        }
        if (da == null && dx == null) {
            return;
        }
        Tensor dt = zeros(DType.F32, dy.rows(), b.cols());
        matmulBackwardInput(dt, dy, b, false);
        scale(dt, scale);
        if (da != null) {
            matmulBackwardWeight(da, dt, x.dtype() == DType.F32 ? x : convert(x, DType.F32), true);
        }
        if (dx != null) {
            matmulBackwardInput(dx, dt, a, true);
        }
    }

    // ---- elementwise ----

    /** y = a + b. */
    void add(Tensor y, Tensor a, Tensor b);

    /** acc += x. */
    void addInPlace(Tensor acc, Tensor x);

    /** y += alpha · x. */
    void axpy(float alpha, Tensor x, Tensor y);

    /** y = a ⊙ b. */
    void mul(Tensor y, Tensor a, Tensor b);

    /** x *= s. */
    void scale(Tensor x, float s);

    /** Every row of x [n, m] += v [m] (a bias). */
    void addRowVector(Tensor x, Tensor v);

    /** acc [m] += Σ over the rows of x [n, m] (a bias's gradient). */
    void addColumnSums(Tensor acc, Tensor x);

    /** y = x with row r times g[r] (g holds one value per row). */
    void scaleRows(Tensor y, Tensor x, Tensor g);

    /** The gradients of {@link #scaleRows(Tensor, Tensor, Tensor)}: dx += g[r]·dy[r], dg[r] += ⟨dy[r], x[r]⟩. */
    void scaleRowsBackward(Tensor dx, Tensor dg, Tensor dy, Tensor x, Tensor g);

    /** y = σ(x). */
    void sigmoid(Tensor y, Tensor x);

    /** dx += dy · y(1 − y), y the forward's output. */
    void sigmoidBackward(Tensor dx, Tensor dy, Tensor y);

    /** y = clamp(x, −limit, limit). */
    void clamp(Tensor y, Tensor x, float limit);

    /** dx += dy where x was not clamped. */
    void clampBackward(Tensor dx, Tensor dy, Tensor x, float limit);

    /** y = act(x). */
    void activation(Activation kind, Tensor y, Tensor x);

    /** dx += dy · act'(x). */
    void activationBackward(Activation kind, Tensor dx, Tensor dy, Tensor x);

    /** Columns [srcFrom, srcFrom + width) of every row of src go to columns [dstFrom, ..) of dst (dst += with {@code accumulate}). */
    void copyColumns(Tensor dst, int dstFrom, Tensor src, int srcFrom, int width, boolean accumulate);

    // ---- normalisation, gating, positions ----

    /** y = RMSNorm(x) ⊙ weight per row (weight may be null). */
    void rmsNorm(Tensor y, Tensor x, Tensor weight, float eps);

    /** dx += and dWeight += the gradients of {@link #rmsNorm} for dy (either may be null). */
    void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dy, Tensor x, Tensor weight, float eps);

    /** y = glu(gate, up) over separate gate and up tensors. */
    void glu(Tensor y, Tensor gate, Tensor up, GluParams params);

    /** dGate +=, dUp += the gradients of {@link #glu(Tensor, Tensor, Tensor, GluParams)} (either may be null). */
    void gluBackward(Tensor dGate, Tensor dUp, Tensor dy, Tensor gate, Tensor up, GluParams params);

    /** y [n, I] = glu over fused gate/up rows [n, 2I] (laid out as params say). */
    void glu(Tensor y, Tensor gateUp, GluParams params);

    /** dGateUp [n, 2I] = the gradient of the fused {@link #glu(Tensor, Tensor, GluParams)} for dy (overwritten). */
    void gluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, GluParams params);

    /** Rotates x [tokens, heads·headDim] in place, token t by the angles of positions[t]. */
    void rope(Tensor x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim);

    /**
     * {@link #rope} with the positions in an I32 tensor of this device (a captured decoding step reads them there at
     * each replay); by default read back to the host first.
     */
    default void rope(Tensor x, Tensor positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        rope(x, hostInts(positions), table, layout, headDim, rotaryDim);
    }

    /** An I32 tensor's values on the host (a copy where it lies on a device). */
    private int[] hostInts(Tensor ints) {
        if (ints.dtype() != DType.I32) {
            throw new IllegalArgumentException("expected an I32 tensor, got " + ints);
        }
        return toHost(ints).segment().toArray(java.lang.foreign.ValueLayout.JAVA_INT);
    }

    /** The transposed rotation of {@link #rope}, in place: its gradient. */
    void ropeBackward(Tensor dx, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim);

    // ---- attention ----

    /**
     * Causal attention within each of {@code sequences} equal-length sequences laid end to end in the rows of q, k
     * and v, into y; sinks [heads] may be null. Returns what {@link #attentionBackward} needs when {@code keep}, else
     * null.
     */
    Object attention(Tensor y, Tensor q, Tensor k, Tensor v, int sequences, AttentionSpec spec, Tensor sinks,
                     boolean keep);

    /** dq, dk, dv, dSinks += the gradients of {@link #attention} for dy (each may be null). */
    void attentionBackward(Object saved, Tensor dq, Tensor dk, Tensor dv, Tensor dSinks, Tensor dy, Tensor q,
                           Tensor k, Tensor v, Tensor y, int sequences, AttentionSpec spec, Tensor sinks);

    /** Queries at positions queryStart.. against cached keys and values of positions [0, keys.rows()). */
    void attentionWithCache(Tensor y, Tensor q, Tensor keys, Tensor values, int queryStart, AttentionSpec spec,
                            Tensor sinks);

    /**
     * k and v [t, ·] written to rows position[0].. of one sequence's cache matrices kCache and vCache, the position an
     * I32 tensor of this device (a captured decoding step reads it there); by default read back to the host first.
     */
    default void writeRowsAt(Tensor kCache, Tensor vCache, Tensor position, Tensor k, Tensor v) {
        int at = hostInts(position)[0], t = k.rows();
        copy(kCache.slice(at, at + t), k);
        copy(vCache.slice(at, at + t), v);
    }

    /**
     * {@link #attentionWithCache} of q's t rows at positions position[0].. against the first position[0] + t rows of
     * keys and values (a cache's whole matrices), the position an I32 tensor of this device; by default read back to
     * the host first.
     */
    default void attentionAt(Tensor y, Tensor q, Tensor keys, Tensor values, Tensor position, AttentionSpec spec,
                             Tensor sinks) {
        int at = hostInts(position)[0], visible = at + q.rows();
        attentionWithCache(y, q, keys.slice(0, visible), values.slice(0, visible), at, spec, sinks);
    }

    /**
     * {@link #attentionWithCache} against a cache held in pieces (a paged KV cache): by default the pieces are
     * gathered into one matrix first, which costs a copy only where the cache is not contiguous.
     */
    default void attentionWithCache(Tensor y, Tensor q, PagedRows keys, PagedRows values, int queryStart,
                                    AttentionSpec spec, Tensor sinks) {
        attentionWithCache(y, q, gathered(keys), gathered(values), queryStart, spec, sinks);
    }

    /** Paged rows as one matrix on this device: the piece itself when there is one, else a copy of the pieces. */
    private Tensor gathered(PagedRows rows) {
        if (rows.contiguous()) {
            return rows.pieces().getFirst();
        }
        Tensor all = empty(rows.pieces().getFirst().dtype(), rows.rows(), rows.cols());
        int at = 0;
        for (Tensor piece : rows.pieces()) {
            copy(all.slice(at, at + piece.rows()), piece);
            at += piece.rows();
        }
        return all;
    }

    // ---- loss and lookup ----

    /** A mean cross-entropy: its value and what the backward step needs. */
    record CrossEntropy(float loss, int counted, Object saved) {
    }

    /** Mean cross-entropy of logits [n, vocab] against targets (entries equal to {@code ignore} do not count). */
    CrossEntropy crossEntropy(Tensor logits, int[] targets, int ignore);

    /** dLogits += g · (softmax − onehot) on every counted row; g is dL/d(mean) / counted. */
    void crossEntropyBackward(Tensor dLogits, CrossEntropy forward, Tensor logits, int[] targets, int ignore, float g);

    /** y [ids, dim] = rows ids of table [vocab, dim]. */
    void embedding(Tensor y, Tensor table, int[] ids);

    /** {@link #embedding} with the ids in an I32 tensor of this device; by default read back to the host first. */
    default void embedding(Tensor y, Tensor table, Tensor ids) {
        embedding(y, table, hostInts(ids));
    }

    /** tableGrad row ids[i] += dy row i. */
    void embeddingBackward(Tensor tableGrad, Tensor dy, int[] ids);

    // ---- the MoE layer's permutations ----

    /** out row r = src row index[r]. */
    void gatherRows(Tensor out, Tensor src, int[] index);

    /** dst row index[r] += weight[r] · src row r (weight null: 1), rows in order. */
    void scatterAddRows(Tensor dst, Tensor src, int[] index, float[] weight);

    /** dst row t += scale[t] · src row t. */
    void addScaledRows(Tensor dst, Tensor src, float[] scale);

    /** Row t of x *= scale[t]. */
    void scaleRows(Tensor x, float[] scale);

    /** out[t] = ⟨a row t, b row t⟩. */
    void rowDots(float[] out, Tensor a, Tensor b);

    /**
     * The combine step's backward: dy row r = weight[r] · dOut row token[r] and rowDots[r] = ⟨dOut row token[r],
     * y row r⟩ (the gradient of the gate weight).
     */
    void combineBackward(Tensor dy, float[] rowDots, Tensor dOut, Tensor y, int[] token, float[] weight);

    /**
     * Runs a small batch of routed rows through SwiGLU experts in one pass, if this backend has such a path:
     * out row t = Σ over rows r of token t: weight[r] · down[e](silu(gate[e]·x) ⊙ up[e]·x) with e = expert[r], x =
     * x row token[r]; gateUp[e] is [2I, H] (gate rows then up rows), down[e] [H, I]. Returns false (doing
     * nothing) where the backend has no such path; the caller then runs the grouped products.
     */
    default boolean smallBatchExperts(Tensor out, Tensor x, int[] token, int[] expert, float[] weight,
                                      Tensor[] gateUp, Tensor[] down) {
        return false;
    }

    /**
     * Routes each row of {@code logits} [tokens, experts] (F32) to its k best experts where the logits are, if this
     * backend can: experts [tokens, k] (I32) gets each token's choices best first (−1 where fewer than k could be
     * chosen), weights [tokens, k] (F32) their gate weights, as the host's top-k router decides them from the same
     * logits. Nothing comes back to the host, so a decoding step need not wait for its routing. Returns false (doing
     * nothing) where the backend has no such path; the caller then routes on the host.
     */
    default boolean routeTopK(Tensor experts, Tensor weights, Tensor logits, TopKRouting routing) {
        return false;
    }

    /**
     * {@link #smallBatchExperts} for rows routed by {@link #routeTopK}: token t's rows are experts [t, 0..k) with
     * weights [t, 0..k), both still on this device (an expert of −1 adds nothing). gateUp and down hold every
     * expert of the layer, as the kernels find the chosen ones by index. Returns false (doing nothing) where the
     * backend has no such path.
     */
    default boolean routedExperts(Tensor out, Tensor x, Tensor experts, Tensor weights, Tensor[] gateUp,
                                  Tensor[] down) {
        return false;
    }

    /**
     * dst row t += σ(gateLogits[t]) · src row t (a shared expert's sigmoid gate, Qwen2-MoE), σ computed in double
     * and rounded once. Here the logits come to the host; a device backend keeps them where they are.
     */
    default void addSigmoidGatedRows(Tensor dst, Tensor src, Tensor gateLogits) {
        float[] z = toHost(gateLogits).toFloatArray();
        float[] gate = new float[z.length];
        for (int t = 0; t < z.length; t++) {
            gate[t] = (float) (1.0 / (1.0 + Math.exp(-z[t])));
        }
        addScaledRows(dst, src, gate);
    }
}
