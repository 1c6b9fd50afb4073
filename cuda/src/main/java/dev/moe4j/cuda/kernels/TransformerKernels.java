package dev.moe4j.cuda.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.Kernel;

import java.util.Arrays;

/**
 * The transformer's operations on a GPU, each the device counterpart of a core kernel with the same arguments:
 * RMSNorm ({@code RmsNorm}), rotary embeddings ({@code Rope}), causal attention ({@code Attention}),
 * cross-entropy, the embedding's gradient, residual adds and the dense gated MLP ({@code SwiGLU}). Activations
 * and their gradients are BF16, weight gradients, logits, log-sum-exps and losses F32; arithmetic is F32.
 * Backward methods with {@code accumulate} add into the gradient instead of overwriting it.
 */
public final class TransformerKernels {
    private static final String MODULE = "transformer";
    private static final int TILE = 32;
    private static final int ATTENTION_THREADS = 256;
    private static final int MAX_HEAD_DIM = 256;
    private static final int WEIGHT_GRAD_ROWS_PER_CHUNK = 256;

    private TransformerKernels() {
    }

    private static Kernel kernel(DeviceTensor anyOperand, String name) {
        return anyOperand.device().kernel(MODULE, name);
    }

    private static int flag(boolean b) {
        return b ? 1 : 0;
    }

    private static int threadsFor(int cols) {
        return Math.max(32, Math.min(1024, (cols + 31) / 32 * 32));
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    // ---- RMSNorm ----

    /** out[r] = x[r] / rms(x[r]) ⊙ weight (weight may be null); invRms [rows] F32 (may be null) keeps 1/rms. */
    public static void rmsNorm(DeviceTensor out, DeviceTensor invRms, DeviceTensor x, DeviceTensor weight, float eps) {
        int rows = x.rows(), cols = x.cols();
        require(out.size() == x.size() && (weight == null || weight.size() == cols)
                && (invRms == null || invRms.size() == rows), "rmsNorm: shapes " + out + ", " + x + ", " + weight);
        kernel(x, "rmsnorm_forward").launch(rows, threadsFor(Math.min(cols, 256)), x, weight, rows, cols, eps, out, invRms);
    }

    /**
     * dx (+)= the input gradient, and (when dWeight is not null) dWeight += Σ_rows dy ⊙ x̂ in a fixed order, from
     * the forward's invRms.
     */
    public static void rmsNormBackward(DeviceTensor dx, boolean accumulate, DeviceTensor dWeight, DeviceTensor dy,
                                       DeviceTensor x, DeviceTensor weight, DeviceTensor invRms) {
        int rows = x.rows(), cols = x.cols();
        require(dx.size() == x.size() && dy.size() == x.size() && invRms.size() == rows, "rmsNormBackward: shapes");
        kernel(x, "rmsnorm_backward").launch(rows, threadsFor(Math.min(cols, 256)), dy, x, weight, invRms, rows, cols, dx,
                flag(accumulate));
        if (dWeight != null) {
            int chunks = (rows + WEIGHT_GRAD_ROWS_PER_CHUNK - 1) / WEIGHT_GRAD_ROWS_PER_CHUNK;
            try (DeviceTensor partial = x.device().allocate(DType.F32, chunks, cols)) {
                kernel(x, "rmsnorm_weight_grad_partial").launchGrid((cols + 255) / 256, chunks, 1, 256, 1, 1, 0,
                        dy, x, invRms, rows, cols, WEIGHT_GRAD_ROWS_PER_CHUNK, partial);
                columnSumsAdd(dWeight, partial);
            }
        }
    }

    /** out [cols] += Σ_rows partial [rows, cols], rows in order (F32). */
    public static void columnSumsAdd(DeviceTensor out, DeviceTensor partial) {
        int cols = partial.cols();
        require(out.size() == cols && partial.dtype() == DType.F32 && out.dtype() == DType.F32, "columnSumsAdd: shapes");
        kernel(partial, "column_sums_add").launch((cols + 255) / 256, 256, partial, partial.rows(), cols, out);
    }

    // ---- rotary embedding ----

    /**
     * out (+)= x with each head of token t rotated by the angles of positions[t] (I32 [tokens]); {@code inverse}
     * rotates by the opposite angles, which is the gradient. out may be x when not accumulating.
     */
    public static void rope(DeviceTensor out, boolean accumulate, DeviceTensor x, DeviceTensor positions,
                            DeviceRopeTable table, RopeLayout layout, int headDim, int rotaryDim, boolean inverse) {
        int tokens = (int) positions.size();
        require(rotaryDim == table.rotaryDim() && rotaryDim % 2 == 0 && rotaryDim <= headDim && tokens > 0
                        && x.size() % ((long) tokens * headDim) == 0 && out.size() == x.size(),
                "rope: " + x + " is not " + tokens + " tokens of whole heads of " + headDim + " (rotary " + rotaryDim + ")");
        int heads = (int) (x.size() / tokens / headDim);
        long work = (long) tokens * heads * (headDim - rotaryDim / 2);
        kernel(x, "rope").launch(DeviceOps.blocks(x.device(), work, 256), 256, x, positions, table.cos(), table.sin(),
                tokens, heads, headDim, rotaryDim, flag(layout == RopeLayout.INTERLEAVED), inverse ? -1f : 1f, out,
                flag(accumulate));
    }

    // ---- attention ----

    private static int sharedBytes(AttentionSpec s, boolean backward) {
        int d = s.headDim() + 1, dv = s.valueHeadDim() + 1;
        return 4 * (2 * TILE * d + TILE * dv + TILE * (TILE + 1) + (backward ? TILE * dv : 0));
    }

    private static void checkAttention(DeviceTensor out, DeviceTensor q, DeviceTensor k, DeviceTensor v, int sequences,
                                       int queryStart, AttentionSpec s) {
        require(s.headDim() <= MAX_HEAD_DIM && s.valueHeadDim() <= MAX_HEAD_DIM,
                "attention: head dimensions up to " + MAX_HEAD_DIM + " on the GPU, got " + s);
        require(sequences > 0 && q.rows() % sequences == 0 && k.rows() % sequences == 0 && v.rows() == k.rows()
                        && q.cols() == s.heads() * s.headDim() && k.cols() == s.kvHeads() * s.headDim()
                        && v.cols() == s.kvHeads() * s.valueHeadDim() && out.rows() == q.rows()
                        && out.cols() == s.heads() * s.valueHeadDim()
                        && queryStart >= 0 && queryStart + q.rows() / sequences <= k.rows() / sequences,
                "attention: q " + q + ", k " + k + ", v " + v + ", out " + out + " in " + sequences
                        + " sequence(s) from position " + queryStart + " do not fit " + s);
    }

    /**
     * Causal attention, as core's {@code Attention.forward}, within each of {@code sequences} sequences laid end to
     * end (q rows and k rows split evenly); queries of a sequence sit at positions queryStart.. (decoding against
     * a cache: k holds positions 0..). lse [rows·heads] F32 (may be null) is kept for the backward pass; sinks
     * [heads] F32 may be null.
     */
    public static void attention(DeviceTensor out, DeviceTensor lse, DeviceTensor q, DeviceTensor k, DeviceTensor v,
                                 int sequences, int queryStart, AttentionSpec s, DeviceTensor sinks) {
        checkAttention(out, q, k, v, sequences, queryStart, s);
        int t = q.rows() / sequences, keys = k.rows() / sequences;
        kernel(q, "attention_forward").launchGrid((t + TILE - 1) / TILE, s.heads(), sequences, ATTENTION_THREADS, 1, 1,
                sharedBytes(s, false), q, k, v, t, keys, s.heads(), s.kvHeads(), s.headDim(), s.valueHeadDim(),
                s.scale(), queryStart, s.slidingWindow(), sinks, out, lse);
    }

    /**
     * The gradients of {@link #attention} for dOut: dq, dk, dv (BF16, added into when {@code accumulate}) and, when
     * dSinks is not null, dSinks [heads] F32 += the sinks' gradient.
     */
    public static void attentionBackward(DeviceTensor dq, DeviceTensor dk, DeviceTensor dv, DeviceTensor dSinks,
                                         boolean accumulate, DeviceTensor dOut, DeviceTensor q, DeviceTensor k,
                                         DeviceTensor v, DeviceTensor out, DeviceTensor lse, int sequences,
                                         int queryStart, AttentionSpec s, DeviceTensor sinks) {
        checkAttention(out, q, k, v, sequences, queryStart, s);
        require(dq.size() == q.size() && dk.size() == k.size() && dv.size() == v.size() && dOut.size() == out.size()
                && lse.size() == (long) q.rows() * s.heads(), "attentionBackward: gradient shapes");
        CudaDevice device = q.device();
        int rows = q.rows(), t = rows / sequences, keys = k.rows() / sequences;
        try (DeviceTensor d = device.allocate(DType.F32, rows, s.heads());
             DeviceTensor sinkTerm = dSinks != null ? device.allocate(DType.F32, rows, s.heads()) : null) {
            long threads = (long) rows * s.heads() * 32;
            kernel(q, "attention_backward_prepare").launch((int) ((threads + 255) / 256), 256, dOut, out, lse, sinks,
                    rows, s.heads(), s.valueHeadDim(), d, sinkTerm);
            kernel(q, "attention_backward_dq").launchGrid((t + TILE - 1) / TILE, s.heads(), sequences, ATTENTION_THREADS,
                    1, 1, sharedBytes(s, true), q, k, v, dOut, lse, d, t, keys, s.heads(), s.kvHeads(), s.headDim(),
                    s.valueHeadDim(), s.scale(), queryStart, s.slidingWindow(), dq, flag(accumulate));
            kernel(q, "attention_backward_dkdv").launchGrid((keys + TILE - 1) / TILE, s.kvHeads(), sequences,
                    ATTENTION_THREADS, 1, 1, sharedBytes(s, true), q, k, v, dOut, lse, d, t, keys, s.heads(),
                    s.kvHeads(), s.headDim(), s.valueHeadDim(), s.scale(), queryStart, s.slidingWindow(), dk, dv,
                    flag(accumulate));
            if (dSinks != null) {
                columnSumsAdd(dSinks, sinkTerm);
            }
        }
    }

    // ---- cross-entropy ----

    /** The mean loss and, for the backward pass, each row's log-sum-exp. */
    public record CrossEntropy(double loss, int counted, DeviceTensor lse) implements AutoCloseable {
        @Override
        public void close() {
            lse.close();
        }
    }

    /**
     * Mean cross-entropy of F32 logits [n, vocab] against I32 targets [n]; targets equal to ignoreIndex do not
     * count. The per-row losses come back to the host and are summed there in double, in row order.
     */
    public static CrossEntropy crossEntropy(DeviceTensor logits, DeviceTensor targets, int[] hostTargets, int ignoreIndex) {
        int n = logits.rows(), vocab = logits.cols();
        require(logits.dtype() == DType.F32 && targets.size() == n && hostTargets.length == n, "crossEntropy: shapes");
        for (int target : hostTargets) {
            if (target != ignoreIndex && (target < 0 || target >= vocab)) {
                throw new IndexOutOfBoundsException("target " + target + " outside vocabulary of " + vocab);
            }
        }
        CudaDevice device = logits.device();
        DeviceTensor lse = device.allocate(DType.F32, n);
        try (DeviceTensor loss = device.allocate(DType.F32, n)) {
            kernel(logits, "cross_entropy_forward").launch(n, 256, logits, targets, n, vocab, ignoreIndex, lse, loss);
            float[] perRow = loss.toHost().toFloatArray();
            double sum = 0;
            int counted = 0;
            for (int i = 0; i < n; i++) {
                if (hostTargets[i] != ignoreIndex) {
                    sum += perRow[i];
                    counted++;
                }
            }
            return new CrossEntropy(counted == 0 ? 0 : sum / counted, counted, lse);
        }
    }

    /** dLogits (+)= g · (softmax − onehot) per counted row; g is dL/d(mean loss) / counted. */
    public static void crossEntropyBackward(DeviceTensor dLogits, boolean accumulate, DeviceTensor logits,
                                            DeviceTensor targets, DeviceTensor lse, int ignoreIndex, float g) {
        int n = logits.rows();
        kernel(logits, "cross_entropy_backward").launch(n, 256, logits, targets, lse, n, logits.cols(), ignoreIndex, g,
                dLogits, flag(accumulate));
    }

    // ---- embedding ----

    /** out [ids, dim] = rows ids (I32) of table [vocab, dim]. */
    public static void embedding(DeviceTensor out, DeviceTensor table, DeviceTensor ids) {
        int n = (int) ids.size(), dim = table.cols();
        require(out.rows() == n && out.cols() == dim && out.dtype() == table.dtype(), "embedding: shapes");
        out.device().kernel("kernels", "gather_rows").launch(n, Math.max(32, Math.min(256, (dim / 8 + 31) / 32 * 32)),
                table, ids, n, dim, out);
    }

    /**
     * tableGrad [vocab, dim] F32 += dy rows summed per id: the host groups the positions by id, so each row of the
     * gradient is one block's fixed-order sum.
     */
    public static void embeddingBackward(DeviceTensor tableGrad, DeviceTensor dy, int[] ids) {
        int n = ids.length, dim = tableGrad.cols();
        if (n == 0) {
            return;
        }
        require(dy.rows() == n && dy.cols() == dim && tableGrad.dtype() == DType.F32, "embeddingBackward: shapes");
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> ids[a] != ids[b] ? Integer.compare(ids[a], ids[b]) : Integer.compare(a, b));
        int[] orderInts = new int[n], starts = new int[n + 1], targetRows = new int[n];
        int segments = 0;
        for (int i = 0; i < n; i++) {
            orderInts[i] = order[i];
            if (i == 0 || ids[order[i]] != ids[order[i - 1]]) {
                starts[segments] = i;
                targetRows[segments++] = ids[order[i]];
            }
        }
        starts[segments] = n;
        CudaDevice device = dy.device();
        try (DeviceTensor o = upload(device, orderInts, n); DeviceTensor s = upload(device, starts, segments + 1);
             DeviceTensor t = upload(device, targetRows, segments)) {
            kernel(dy, "segment_rows_add").launch(segments, threadsFor(Math.min(dim, 256)), dy, o, s, t, segments, dim,
                    tableGrad);
        }
    }

    /** A new I32 device tensor holding the first n (at least one) values. */
    public static DeviceTensor upload(CudaDevice device, int[] values, int n) {
        var host = dev.moe4j.core.Tensor.zeros(DType.I32, n);
        for (int i = 0; i < n; i++) {
            host.setLong(i, values[i]);
        }
        return device.upload(host);
    }

    // ---- elementwise ----

    /** out = a + b (BF16; out may be a or b). */
    public static void add(DeviceTensor out, DeviceTensor a, DeviceTensor b) {
        require(a.size() == b.size() && out.size() == a.size(), "add: sizes");
        kernel(a, "add").launch(DeviceOps.blocks(a.device(), a.size(), 256), 256, a, b, a.size(), out);
    }

    /** y += alpha · x (BF16). */
    public static void axpy(float alpha, DeviceTensor x, DeviceTensor y) {
        require(x.size() == y.size(), "axpy: sizes");
        kernel(x, "axpy").launch(DeviceOps.blocks(x.device(), x.size(), 256), 256, alpha, x, x.size(), y);
    }

    /** out = silu(gate) ⊙ up, over separate gate and up tensors of one shape. */
    public static void glu(DeviceTensor out, DeviceTensor gate, DeviceTensor up) {
        require(gate.size() == up.size() && out.size() == gate.size(), "glu: sizes");
        kernel(gate, "glu_forward").launch(DeviceOps.blocks(gate.device(), gate.size(), 256), 256, gate, up, gate.size(), out);
    }

    /** dGate, dUp (+)= the gradients of {@link #glu} for dOut. */
    public static void gluBackward(DeviceTensor dGate, DeviceTensor dUp, boolean accumulate, DeviceTensor dOut,
                                   DeviceTensor gate, DeviceTensor up) {
        require(gate.size() == up.size() && dOut.size() == gate.size() && dGate.size() == gate.size()
                && dUp.size() == gate.size(), "gluBackward: sizes");
        kernel(gate, "glu_backward").launch(DeviceOps.blocks(gate.device(), gate.size(), 256), 256, gate, up, dOut,
                gate.size(), dGate, dUp, flag(accumulate));
    }
}
