package dev.moe4j.core.backend;

import dev.moe4j.core.DType;
import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.Activations;
import dev.moe4j.core.kernels.Attention;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.Gather;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.kernels.RmsNorm;
import dev.moe4j.core.kernels.Rope;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.kernels.ScatterAdd;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.core.kernels.SwiGLU;
import dev.moe4j.core.kernels.VectorMath;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The core kernels as a {@link Backend}: F32 activations and gradients on the Java heap, weights in any float type
 * (memory-mapped checkpoints widen on the fly). Every method is the kernel call sequence the operations made
 * before the backend existed, so results are bit for bit the same.
 */
public final class CpuBackend implements Backend {
    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {
    }

    @Override
    public Device device() {
        return Device.HOST;
    }

    @Override
    public DType activationType() {
        return DType.F32;
    }

    // ---- memory ----

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        return Tensor.zeros(dtype, shape);
    }

    @Override
    public Tensor copyOf(Tensor t) {
        return t.copy();
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        if (!dst.isHost() || !src.isHost()) {
            Device other = dst.isHost() ? src.device() : dst.device();
            other.backend().copy(dst, src);
            return;
        }
        dst.copyFrom(src);
    }

    @Override
    public Tensor toHost(Tensor t) {
        return t.toHost();
    }

    @Override
    public Tensor upload(Tensor host, DType dtype) {
        return host.dtype() == dtype ? host : host.to(dtype);
    }

    @Override
    public Tensor convert(Tensor x, DType dtype) {
        return x.dtype() == dtype ? x : x.to(dtype);
    }

    @Override
    public void fill(Tensor t, float value) {
        t.fill(value);
    }

    // ---- products ----

    @Override
    public void matmul(Tensor y, Tensor x, Tensor w) {
        MatMul.forward(y, x, w);
    }

    @Override
    public void multiply(Tensor y, Tensor a, Tensor b) {
        MatMul.multiply(y, a, b);
    }

    @Override
    public void matmulBackwardInput(Tensor dx, Tensor dy, Tensor w, boolean accumulate) {
        MatMul.backwardInput(dx, dy, w, accumulate);
    }

    @Override
    public void matmulBackwardWeight(Tensor dw, Tensor dy, Tensor x, boolean accumulate) {
        MatMul.backwardWeight(dw, dy, x, accumulate);
    }

    // ---- elementwise ----

    @Override
    public void add(Tensor y, Tensor a, Tensor b) {
        VectorMath.add(y, a, b);
    }

    @Override
    public void addInPlace(Tensor acc, Tensor x) {
        VectorMath.addInPlace(acc, x);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        VectorMath.axpy(alpha, x, y);
    }

    @Override
    public void mul(Tensor y, Tensor a, Tensor b) {
        VectorMath.mul(y, a, b);
    }

    @Override
    public void scale(Tensor x, float s) {
        VectorMath.scale(x, s);
    }

    @Override
    public void addRowVector(Tensor x, Tensor v) {
        VectorMath.addRowVector(x, v);
    }

    @Override
    public void addColumnSums(Tensor acc, Tensor x) {
        VectorMath.addColumnSums(acc, x);
    }

    @Override
    public void scaleRows(Tensor y, Tensor x, Tensor g) {
        y.copyFrom(x);
        for (int r = 0; r < y.rows(); r++) {
            VectorMath.scale(y.select(r), g.getFloat(r));
        }
    }

    @Override
    public void scaleRowsBackward(Tensor dx, Tensor dg, Tensor dy, Tensor x, Tensor g) {
        for (int r = 0; r < dy.rows(); r++) {
            Tensor gr = dy.select(r);
            if (dx != null) {
                VectorMath.axpy(g.getFloat(r), gr, dx.select(r));
            }
            if (dg != null) {
                float d = VectorMath.dot(gr, x.select(r));
                dg.setFloat(r, dg.getFloat(r) + d);
            }
        }
    }

    @Override
    public void sigmoid(Tensor y, Tensor x) {
        for (long i = 0; i < y.size(); i++) {
            y.setFloat(i, (float) (1 / (1 + Math.exp(-x.getFloat(i)))));
        }
    }

    @Override
    public void sigmoidBackward(Tensor dx, Tensor dy, Tensor y) {
        for (long i = 0; i < y.size(); i++) {
            float s = y.getFloat(i);
            dx.setFloat(i, dx.getFloat(i) + dy.getFloat(i) * s * (1 - s));
        }
    }

    @Override
    public void clamp(Tensor y, Tensor x, float limit) {
        for (long i = 0; i < y.size(); i++) {
            y.setFloat(i, Math.max(-limit, Math.min(limit, x.getFloat(i))));
        }
    }

    @Override
    public void clampBackward(Tensor dx, Tensor dy, Tensor x, float limit) {
        for (long i = 0; i < x.size(); i++) {
            float v = x.getFloat(i);
            if (v >= -limit && v <= limit) {
                dx.setFloat(i, dx.getFloat(i) + dy.getFloat(i));
            }
        }
    }

    @Override
    public void activation(Activation kind, Tensor y, Tensor x) {
        Activations.forward(kind, y, x);
    }

    @Override
    public void activationBackward(Activation kind, Tensor dx, Tensor dy, Tensor x) {
        Tensor d = Tensor.zeros(x.shape());
        Activations.backward(kind, d, dy, x);
        VectorMath.addInPlace(dx, d);
    }

    @Override
    public void copyColumns(Tensor dst, int dstFrom, Tensor src, int srcFrom, int width, boolean accumulate) {
        int rows = src.rows(), srcCols = src.cols(), dstCols = dst.cols();
        for (int r = 0; r < rows; r++) {
            if (accumulate) {
                VectorMath.axpy(1f, src, (long) r * srcCols + srcFrom, dst, (long) r * dstCols + dstFrom, width);
            } else {
                MemorySegment.copy(src.segment(), ((long) r * srcCols + srcFrom) * 4, dst.segment(),
                        ((long) r * dstCols + dstFrom) * 4, (long) width * 4);
            }
        }
    }

    // ---- normalisation, gating, positions ----

    @Override
    public void rmsNorm(Tensor y, Tensor x, Tensor weight, float eps) {
        RmsNorm.forward(y, x, weight, eps);
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dy, Tensor x, Tensor weight, float eps) {
        Tensor d = Tensor.zeros(x.shape());
        RmsNorm.backward(d, dWeight, dy, x, weight, eps);
        if (dx != null) {
            VectorMath.addInPlace(dx, d);
        }
    }

    @Override
    public void glu(Tensor y, Tensor gate, Tensor up, GluParams params) {
        SwiGLU.forward(y, gate, up, params);
    }

    @Override
    public void gluBackward(Tensor dGate, Tensor dUp, Tensor dy, Tensor gate, Tensor up, GluParams params) {
        Tensor g = Tensor.zeros(gate.shape()), u = Tensor.zeros(gate.shape());
        SwiGLU.backward(g, u, dy, gate, up, params);
        if (dGate != null) {
            VectorMath.addInPlace(dGate, g);
        }
        if (dUp != null) {
            VectorMath.addInPlace(dUp, u);
        }
    }

    @Override
    public void glu(Tensor y, Tensor gateUp, GluParams params) {
        SwiGLU.forward(y, gateUp, params);
    }

    @Override
    public void gluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, GluParams params) {
        SwiGLU.backward(dGateUp, dy, gateUp, params);
    }

    @Override
    public void rope(Tensor x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        Rope.forward(x, positions, table, layout, headDim, rotaryDim);
    }

    @Override
    public void ropeBackward(Tensor dx, int[] positions, RopeTable table, RopeLayout layout, int headDim,
                             int rotaryDim) {
        Rope.backward(dx, positions, table, layout, headDim, rotaryDim);
    }

    // ---- attention ----

    @Override
    public Object attention(Tensor y, Tensor q, Tensor k, Tensor v, int sequences, AttentionSpec spec, Tensor sinks,
                            boolean keep) {
        int rows = q.rows(), length = rows / sequences;
        // Only the backward pass needs each row's log-sum-exp.
        float[] lse = keep ? new float[rows * spec.heads()] : null;
        for (int b = 0; b < sequences; b++) {
            int from = b * length, to = from + length;
            float[] part = lse == null ? null : new float[length * spec.heads()];
            Attention.forward(y.slice(from, to), part, q.slice(from, to), k.slice(from, to), v.slice(from, to), 0,
                    spec, sinks);
            if (part != null) {
                System.arraycopy(part, 0, lse, from * spec.heads(), part.length);
            }
        }
        return lse;
    }

    @Override
    public void attentionBackward(Object saved, Tensor dqAcc, Tensor dkAcc, Tensor dvAcc, Tensor dSinksAcc,
                                  Tensor dy, Tensor q, Tensor k, Tensor v, Tensor y, int sequences, AttentionSpec spec,
                                  Tensor sinks) {
        float[] lse = (float[]) saved;
        int length = q.rows() / sequences;
        Tensor dq = Tensor.zeros(q.shape()), dk = Tensor.zeros(k.shape()), dv = Tensor.zeros(v.shape());
        Tensor dSinks = dSinksAcc != null ? Tensor.zeros(spec.heads()) : null;
        for (int b = 0; b < sequences; b++) {
            int from = b * length, to = from + length;
            float[] part = Arrays.copyOfRange(lse, from * spec.heads(), to * spec.heads());
            Attention.backward(dq.slice(from, to), dk.slice(from, to), dv.slice(from, to), dSinks,
                    dy.slice(from, to), q.slice(from, to), k.slice(from, to), v.slice(from, to), y.slice(from, to),
                    part, 0, spec, sinks);
        }
        addIfWanted(dqAcc, dq);
        addIfWanted(dkAcc, dk);
        addIfWanted(dvAcc, dv);
        addIfWanted(dSinksAcc, dSinks);
    }

    private static void addIfWanted(Tensor acc, Tensor gradient) {
        if (acc != null) {
            VectorMath.addInPlace(acc, gradient);
        }
    }

    @Override
    public void attentionWithCache(Tensor y, Tensor q, Tensor keys, Tensor values, int queryStart, AttentionSpec spec,
                                   Tensor sinks) {
        Attention.forward(y, null, q, keys, values, queryStart, spec, sinks);
    }

    @Override
    public void attentionWithCache(Tensor y, Tensor q, PagedRows keys, PagedRows values, int queryStart,
                                   AttentionSpec spec, Tensor sinks) {
        Attention.forward(y, null, q, keys, values, queryStart, spec, sinks);
    }

    // ---- loss and lookup ----

    @Override
    public CrossEntropy crossEntropy(Tensor logits, int[] targets, int ignore) {
        int n = logits.rows(), vocab = logits.cols();
        float[] lse = new float[n];
        Softmax.logSumExp(logits, lse);
        double sum = 0;
        int counted = 0;
        for (int i = 0; i < n; i++) {
            if (targets[i] == ignore) {
                continue;
            }
            sum += lse[i] - logits.getFloat((long) i * vocab + targets[i]);
            counted++;
        }
        return new CrossEntropy((float) (counted == 0 ? 0 : sum / counted), counted, null);
    }

    @Override
    public void crossEntropyBackward(Tensor dLogitsAcc, CrossEntropy forward, Tensor logits, int[] targets, int ignore,
                                     float g) {
        int n = logits.rows(), vocab = logits.cols();
        Tensor dLogits = Tensor.zeros(n, vocab);
        Softmax.forward(dLogits, logits);
        for (int i = 0; i < n; i++) {
            Tensor row = dLogits.select(i);
            if (targets[i] == ignore) {
                row.fill(0f);
                continue;
            }
            row.setFloat(targets[i], row.getFloat(targets[i]) - 1f);
            VectorMath.scale(row, g);
        }
        VectorMath.addInPlace(dLogitsAcc, dLogits);
    }

    @Override
    public void embedding(Tensor y, Tensor table, int[] ids) {
        for (int i = 0; i < ids.length; i++) {
            y.select(i).copyFrom(table.select(ids[i]));
        }
    }

    @Override
    public void embeddingBackward(Tensor tableGrad, Tensor dy, int[] ids) {
        int dim = tableGrad.cols();
        for (int i = 0; i < ids.length; i++) {
            VectorMath.axpy(1f, dy, (long) i * dim, tableGrad, (long) ids[i] * dim, dim);
        }
    }

    // ---- the MoE layer's permutations ----

    @Override
    public void gatherRows(Tensor out, Tensor src, int[] index) {
        Gather.rows(out, src, index);
    }

    @Override
    public void scatterAddRows(Tensor dst, Tensor src, int[] index, float[] weight) {
        ScatterAdd.rows(dst, src, index, weight);
    }

    @Override
    public void addScaledRows(Tensor dst, Tensor src, float[] scale) {
        int h = dst.cols();
        for (int t = 0; t < scale.length; t++) {
            VectorMath.axpy(scale[t], src, (long) t * h, dst, (long) t * h, h);
        }
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        for (int t = 0; t < scale.length; t++) {
            VectorMath.scale(x.slice(t, t + 1), scale[t]);
        }
    }

    @Override
    public void rowDots(float[] out, Tensor a, Tensor b) {
        int h = a.cols();
        for (int t = 0; t < out.length; t++) {
            out[t] = VectorMath.dot(a, (long) t * h, b, (long) t * h, h);
        }
    }

    @Override
    public void combineBackward(Tensor dy, float[] rowDots, Tensor dOut, Tensor y, int[] token, float[] weight) {
        int h = dOut.cols();
        Gather.rows(dy, dOut, token);
        for (int r = 0; r < token.length; r++) {
            int t = token[r];
            rowDots[r] = VectorMath.dot(dOut, (long) t * h, y, (long) r * h, h);
            VectorMath.scale(dy.slice(r, r + 1), weight[r]);
        }
    }

    @Override
    public String toString() {
        return "cpu";
    }
}
