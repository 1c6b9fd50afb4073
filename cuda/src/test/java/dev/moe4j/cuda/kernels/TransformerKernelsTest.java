package dev.moe4j.cuda.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Attention;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RmsNorm;
import dev.moe4j.core.kernels.Rope;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.kernels.SwiGLU;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.Gpu;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static dev.moe4j.cuda.Gpu.values;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Each GPU transformer kernel against the core CPU kernel it stands for, on the same BF16-rounded inputs: BF16
 * outputs within 1e-2 of the largest reference value, F32 ones (log-sum-exps, losses, weight gradients) closer.
 */
class TransformerKernelsTest {
    private static final double BF16 = 1e-2;

    @Test
    void rmsNormAndItsGradientsMatchTheCpu() {
        CudaDevice d = Gpu.device();
        var random = new Random(21);
        for (int cols : new int[] {200, 4096}) {
            int rows = 19;
            float eps = 1e-6f;
            Tensor x = bf16Normal(random, 1, rows, cols), w = bf16Normal(random, 1, cols), dy = bf16Normal(random, 1, rows, cols);
            Tensor y = Tensor.zeros(rows, cols), dx = Tensor.zeros(rows, cols), dw = Tensor.zeros(cols);
            RmsNorm.forward(y, x, w, eps);
            RmsNorm.backward(dx, dw, dy, x, w, eps);
            try (DeviceTensor gx = d.upload(x, DType.BF16); DeviceTensor gw = d.upload(w, DType.BF16);
                 DeviceTensor gdy = d.upload(dy, DType.BF16); DeviceTensor gy = d.allocate(DType.BF16, rows, cols);
                 DeviceTensor inv = d.allocate(DType.F32, rows); DeviceTensor gdx = d.allocate(DType.BF16, rows, cols);
                 DeviceTensor gdw = d.zeros(DType.F32, cols)) {
                TransformerKernels.rmsNorm(gy, inv, gx, gw, eps);
                TransformerKernels.rmsNormBackward(gdx, false, gdw, gdy, gx, gw, inv);
                TensorAssert.assertClose(values(y), gy.toHostF32(), BF16, "rmsNorm " + cols);
                TensorAssert.assertClose(values(dx), gdx.toHostF32(), BF16, "rmsNorm dx " + cols);
                TensorAssert.assertClose(values(dw), gdw.toHost(), 1e-4, "rmsNorm dWeight " + cols);
            }
        }
    }

    @Test
    void ropeRotatesAsTheCpuInBothLayoutsAndItsInverseIsTheGradient() {
        CudaDevice d = Gpu.device();
        var random = new Random(22);
        int tokens = 11, heads = 3, headDim = 32, rotaryDim = 24, maxPositions = 64;
        float[] invFreq = new float[rotaryDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(10000, -2.0 * i / rotaryDim);
        }
        RopeTable table = new RopeTable(invFreq, 1.25f, maxPositions);
        int[] positions = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            positions[t] = random.nextInt(maxPositions);
        }
        try (DeviceRopeTable gt = new DeviceRopeTable(d, table);
             DeviceTensor gp = TransformerKernels.upload(d, positions, tokens)) {
            for (RopeLayout layout : RopeLayout.values()) {
                Tensor x = bf16Normal(random, 1, tokens, heads * headDim), base = bf16Normal(random, 1, tokens, heads * headDim);
                Tensor fwd = x.copy(), inv = x.copy();
                Rope.forward(fwd, positions, table, layout, headDim, rotaryDim);
                Rope.backward(inv, positions, table, layout, headDim, rotaryDim);
                double[] accumulated = values(inv);
                double[] b = values(base);
                for (int i = 0; i < accumulated.length; i++) {
                    accumulated[i] += b[i];
                }
                try (DeviceTensor gx = d.upload(x, DType.BF16); DeviceTensor gacc = d.upload(base, DType.BF16)) {
                    TransformerKernels.rope(gacc, true, gx, gp, gt, layout, headDim, rotaryDim, true);
                    TransformerKernels.rope(gx, false, gx, gp, gt, layout, headDim, rotaryDim, false);
                    TensorAssert.assertClose(values(fwd), gx.toHostF32(), BF16, layout + " forward in place");
                    TensorAssert.assertClose(accumulated, gacc.toHostF32(), BF16, layout + " inverse, accumulated");
                }
            }
        }
    }

    @Test
    void attentionAndItsGradientsMatchTheCpu() {
        CudaDevice d = Gpu.device();
        record Case(String name, int sequences, int rows, int keys, int queryStart, AttentionSpec spec, boolean sinks) {
        }
        Case[] cases = {
                new Case("GQA, two sequences", 2, 37, 37, 0, AttentionSpec.of(4, 2, 16), false),
                new Case("MQA, window 5, sinks, value dim 48", 1, 45, 45, 0,
                        new AttentionSpec(4, 1, 64, 48, 0.125f, 5), true),
                new Case("decoding 3 queries against 43 cached keys, head dim 128", 1, 3, 43, 40,
                        AttentionSpec.of(8, 2, 128), false),
        };
        var random = new Random(23);
        for (Case c : cases) {
            AttentionSpec s = c.spec();
            int n = c.sequences() * c.rows(), kn = c.sequences() * c.keys();
            Tensor q = bf16Normal(random, 1, n, s.heads() * s.headDim()), k = bf16Normal(random, 1, kn, s.kvHeads() * s.headDim());
            Tensor v = bf16Normal(random, 1, kn, s.kvHeads() * s.valueHeadDim()), dOut = bf16Normal(random, 1, n, s.heads() * s.valueHeadDim());
            Tensor sinks = c.sinks() ? bf16Normal(random, 1, s.heads()) : null;
            Tensor out = Tensor.zeros(n, s.heads() * s.valueHeadDim());
            Tensor dq = Tensor.zeros(q.shape()), dk = Tensor.zeros(k.shape()), dv = Tensor.zeros(v.shape());
            Tensor dSinks = c.sinks() ? Tensor.zeros(s.heads()) : null;
            float[] lse = new float[n * s.heads()];
            for (int b = 0; b < c.sequences(); b++) {
                int qf = b * c.rows(), qt = qf + c.rows(), kf = b * c.keys(), kt = kf + c.keys();
                float[] part = new float[c.rows() * s.heads()];
                Attention.forward(out.slice(qf, qt), part, q.slice(qf, qt), k.slice(kf, kt), v.slice(kf, kt), c.queryStart(), s, sinks);
                Attention.backward(dq.slice(qf, qt), dk.slice(kf, kt), dv.slice(kf, kt), dSinks, dOut.slice(qf, qt),
                        q.slice(qf, qt), k.slice(kf, kt), v.slice(kf, kt), out.slice(qf, qt), part, c.queryStart(), s, sinks);
                System.arraycopy(part, 0, lse, qf * s.heads(), part.length);
            }
            try (DeviceTensor gq = d.upload(q, DType.BF16); DeviceTensor gk = d.upload(k, DType.BF16);
                 DeviceTensor gv = d.upload(v, DType.BF16); DeviceTensor gdo = d.upload(dOut, DType.BF16);
                 DeviceTensor gs = sinks == null ? null : d.upload(sinks, DType.F32);
                 DeviceTensor gout = d.allocate(DType.BF16, out.shape()); DeviceTensor glse = d.allocate(DType.F32, n * s.heads());
                 DeviceTensor gdq = d.zeros(DType.BF16, q.shape()); DeviceTensor gdk = d.zeros(DType.BF16, k.shape());
                 DeviceTensor gdv = d.zeros(DType.BF16, v.shape());
                 DeviceTensor gds = c.sinks() ? d.zeros(DType.F32, s.heads()) : null) {
                TransformerKernels.attention(gout, glse, gq, gk, gv, c.sequences(), c.queryStart(), s, gs);
                TransformerKernels.attentionBackward(gdq, gdk, gdv, gds, false, gdo, gq, gk, gv, gout, glse,
                        c.sequences(), c.queryStart(), s, gs);
                TensorAssert.assertClose(values(out), gout.toHostF32(), BF16, c.name() + ": out");
                TensorAssert.assertClose(values(Tensor.of(lse, lse.length)), glse.toHost(), 1e-4, c.name() + ": log-sum-exp");
                TensorAssert.assertClose(values(dq), gdq.toHostF32(), BF16, c.name() + ": dq");
                TensorAssert.assertClose(values(dk), gdk.toHostF32(), BF16, c.name() + ": dk");
                TensorAssert.assertClose(values(dv), gdv.toHostF32(), BF16, c.name() + ": dv");
                if (gds != null) {
                    TensorAssert.assertClose(values(dSinks), gds.toHost(), BF16, c.name() + ": dSinks");
                }
            }
        }
    }

    @Test
    void crossEntropyAndItsGradientMatchADirectComputation() {
        CudaDevice d = Gpu.device();
        var random = new Random(24);
        int n = 13, vocab = 1000, ignore = -100;
        Tensor logits = bf16Normal(random, 2, n, vocab);
        int[] targets = new int[n];
        for (int i = 0; i < n; i++) {
            targets[i] = i % 5 == 3 ? ignore : random.nextInt(vocab);
        }
        double sum = 0;
        int counted = 0;
        double[] dLogits = new double[n * vocab];
        double[] lses = new double[n];
        for (int i = 0; i < n; i++) {
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int c = 0; c < vocab; c++) {
                max = Math.max(max, logits.getFloat((long) i * vocab + c));
            }
            for (int c = 0; c < vocab; c++) {
                z += Math.exp(logits.getFloat((long) i * vocab + c) - max);
            }
            lses[i] = max + Math.log(z);
            if (targets[i] != ignore) {
                sum += lses[i] - logits.getFloat((long) i * vocab + targets[i]);
                counted++;
            }
        }
        float g = 1f / counted;
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < vocab && targets[i] != ignore; c++) {
                dLogits[i * vocab + c] = g * (Math.exp(logits.getFloat((long) i * vocab + c) - lses[i]) - (c == targets[i] ? 1 : 0));
            }
        }
        try (DeviceTensor gl = d.upload(logits, DType.F32); DeviceTensor gt = TransformerKernels.upload(d, targets, n);
             DeviceTensor gd = d.allocate(DType.F32, n, vocab);
             TransformerKernels.CrossEntropy ce = TransformerKernels.crossEntropy(gl, gt, targets, ignore)) {
            assertEquals(sum / counted, ce.loss(), 1e-5 * Math.abs(sum / counted));
            assertEquals(counted, ce.counted());
            TransformerKernels.crossEntropyBackward(gd, false, gl, gt, ce.lse(), ignore, g);
            TensorAssert.assertClose(dLogits, gd.toHost(), 1e-5, "dLogits");
        }
    }

    @Test
    void embeddingGathersRowsAndSumsRepeatedIdsInItsGradient() {
        CudaDevice d = Gpu.device();
        var random = new Random(25);
        int vocab = 50, dim = 24;
        int[] ids = {7, 3, 7, 49, 0, 7, 3};
        Tensor table = bf16Normal(random, 1, vocab, dim), dy = bf16Normal(random, 1, ids.length, dim);
        double[] rows = new double[ids.length * dim], grad = new double[vocab * dim];
        for (int i = 0; i < ids.length; i++) {
            for (int c = 0; c < dim; c++) {
                rows[i * dim + c] = table.getFloat((long) ids[i] * dim + c);
                grad[ids[i] * dim + c] += dy.getFloat((long) i * dim + c);
            }
        }
        try (DeviceTensor gt = d.upload(table, DType.BF16); DeviceTensor gi = TransformerKernels.upload(d, ids, ids.length);
             DeviceTensor out = d.allocate(DType.BF16, ids.length, dim); DeviceTensor gdy = d.upload(dy, DType.BF16);
             DeviceTensor gg = d.zeros(DType.F32, vocab, dim)) {
            TransformerKernels.embedding(out, gt, gi);
            TransformerKernels.embeddingBackward(gg, gdy, ids);
            TensorAssert.assertClose(rows, out.toHostF32(), 0, "rows");
            TensorAssert.assertClose(grad, gg.toHost(), 1e-6, "gradient");
        }
    }

    @Test
    void gatedUnitAndResidualAddMatchTheCpu() {
        CudaDevice d = Gpu.device();
        var random = new Random(26);
        int rows = 9, inter = 61;
        Tensor gate = bf16Normal(random, 1, rows, inter), up = bf16Normal(random, 1, rows, inter), dOut = bf16Normal(random, 1, rows, inter);
        Tensor y = Tensor.zeros(rows, inter), dg = Tensor.zeros(rows, inter), du = Tensor.zeros(rows, inter);
        SwiGLU.forward(y, gate, up, GluParams.swiglu());
        SwiGLU.backward(dg, du, dOut, gate, up, GluParams.swiglu());
        double[] sum = values(gate);
        double[] u = values(up);
        for (int i = 0; i < sum.length; i++) {
            sum[i] += u[i];
        }
        try (DeviceTensor gg = d.upload(gate, DType.BF16); DeviceTensor gu = d.upload(up, DType.BF16);
             DeviceTensor gd = d.upload(dOut, DType.BF16); DeviceTensor gy = d.allocate(DType.BF16, rows, inter);
             DeviceTensor gdg = d.allocate(DType.BF16, rows, inter); DeviceTensor gdu = d.allocate(DType.BF16, rows, inter);
             DeviceTensor gs = d.allocate(DType.BF16, rows, inter)) {
            TransformerKernels.glu(gy, gg, gu);
            TransformerKernels.gluBackward(gdg, gdu, false, gd, gg, gu);
            TransformerKernels.add(gs, gg, gu);
            TensorAssert.assertClose(values(y), gy.toHostF32(), BF16, "glu");
            TensorAssert.assertClose(values(dg), gdg.toHostF32(), BF16, "glu d gate");
            TensorAssert.assertClose(values(du), gdu.toHostF32(), BF16, "glu d up");
            TensorAssert.assertClose(sum, gs.toHostF32(), BF16, "add");
        }
    }
}
