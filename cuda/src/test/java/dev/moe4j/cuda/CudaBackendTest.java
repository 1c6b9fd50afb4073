package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.TensorAssert;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static dev.moe4j.cuda.Gpu.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every operation of the GPU backend against the CPU backend's on the same inputs (BF16-rounded, so both start
 * from the same numbers): activations on the GPU are BF16 and gradients F32, so BF16 results agree within 1e-2 of
 * the largest reference value and F32 ones (gradients, sums, losses) closer. Shapes are odd where a kernel has a
 * vector path, so that both paths run.
 *
 * <p>In {@link Precision#F32} every operation is held to float32's standard, {@link #FLOAT32} relative, on inputs
 * that are not BF16-rounded: a stray rounding to BF16 (2^-9) or TF32 (2^-11) anywhere would show.
 */
class CudaBackendTest {
    private static final double BF16 = 1e-2;
    private static final double F32 = 2e-3;
    /** F32 precision against the CPU: both in F32, apart only by summation order and the last bits of exp/tanh/erf. */
    private static final double FLOAT32 = 1e-5;
    private final Backend cpu = CpuBackend.INSTANCE;

    private static Tensor act(CudaDevice d, Tensor host) {
        return d.upload(host, DType.BF16);
    }

    private static Tensor f32(CudaDevice d, Tensor host) {
        return d.upload(host, DType.F32);
    }

    private static void close(Tensor expected, Tensor actual, double tolerance, String what) {
        TensorAssert.assertClose(values(expected), Tensor.of(Gpu.asFloats(actual), actual.shape()), tolerance, what);
    }

    @Test
    void elementwiseOperationsAndTheirGradientsMatchTheCpu() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(31);
        int rows = 601, cols = 37;
        try (var scope = MemoryScope.open()) {
            Tensor a = bf16Normal(random, 1, rows, cols), b = bf16Normal(random, 1, rows, cols);
            Tensor ga = act(d, a), gb = act(d, b);
            Tensor y = Tensor.zeros(rows, cols), gy = gpu.activations(rows, cols);
            cpu.add(y, a, b);
            gpu.add(gy, ga, gb);
            close(y, gy, BF16, "add");
            cpu.mul(y, a, b);
            gpu.mul(gy, ga, gb);
            close(y, gy, BF16, "mul");

            Tensor acc = bf16Normal(random, 1, rows, cols), gacc = f32(d, acc);
            cpu.addInPlace(acc, a);
            gpu.addInPlace(gacc, ga);
            cpu.axpy(-0.75f, b, acc);
            gpu.axpy(-0.75f, gb, gacc);
            cpu.scale(acc, 1.5f);
            gpu.scale(gacc, 1.5f);
            close(acc, gacc, 1e-6, "addInPlace, axpy, scale into F32");

            Tensor v = bf16Normal(random, 1, cols), withBias = a.copy(), gWithBias = act(d, a);
            cpu.addRowVector(withBias, v);
            gpu.addRowVector(gWithBias, f32(d, v));
            close(withBias, gWithBias, BF16, "addRowVector");
            Tensor sums = bf16Normal(random, 1, cols), gsums = f32(d, sums);
            cpu.addColumnSums(sums, a);
            gpu.addColumnSums(gsums, ga);
            close(sums, gsums, 1e-5, "addColumnSums over 601 rows");

            Tensor g = bf16Normal(random, 1, rows), dy = bf16Normal(random, 1, rows, cols);
            Tensor gdy = f32(d, dy);
            cpu.scaleRows(y, a, g);
            gpu.scaleRows(gy, ga, f32(d, g));
            close(y, gy, BF16, "scaleRows");
            Tensor dx = bf16Normal(random, 1, rows, cols), dg = bf16Normal(random, 1, rows);
            Tensor gdx = f32(d, dx), gdg = f32(d, dg);
            cpu.scaleRowsBackward(dx, dg, dy, a, g);
            gpu.scaleRowsBackward(gdx, gdg, gdy, ga, f32(d, g));
            close(dx, gdx, 1e-5, "scaleRows dx");
            close(dg, gdg, 1e-5, "scaleRows dg");

            cpu.sigmoid(y, a);
            gpu.sigmoid(gy, ga);
            close(y, gy, BF16, "sigmoid");
            Tensor s = y.copy();
            dx = Tensor.zeros(rows, cols);
            gdx = gpu.zeros(DType.F32, rows, cols);
            cpu.sigmoidBackward(dx, dy, s);
            gpu.sigmoidBackward(gdx, gdy, f32(d, s));
            close(dx, gdx, 1e-5, "sigmoid backward");

            cpu.clamp(y, a, 0.7f);
            gpu.clamp(gy, ga, 0.7f);
            close(y, gy, BF16, "clamp");
            dx = Tensor.zeros(rows, cols);
            gdx = gpu.zeros(DType.F32, rows, cols);
            cpu.clampBackward(dx, dy, a, 0.7f);
            gpu.clampBackward(gdx, gdy, ga, 0.7f);
            close(dx, gdx, 1e-6, "clamp backward");

            for (Activation kind : Activation.values()) {
                cpu.activation(kind, y, a);
                gpu.activation(kind, gy, ga);
                close(y, gy, BF16, kind + " forward");
                dx = bf16Normal(random, 1, rows, cols);
                gdx = f32(d, dx);
                cpu.activationBackward(kind, dx, dy, a);
                gpu.activationBackward(kind, gdx, gdy, ga);
                close(dx, gdx, 1e-4, kind + " backward");
            }

            Tensor narrow = Tensor.zeros(rows, 11), gnarrow = gpu.activations(rows, 11);
            cpu.copyColumns(narrow, 0, a, 13, 11, false);
            gpu.copyColumns(gnarrow, 0, ga, 13, 11, false);
            close(narrow, gnarrow, 0, "copyColumns");
            Tensor wide = bf16Normal(random, 1, rows, cols), gwide = f32(d, wide);
            cpu.copyColumns(wide, 20, narrow, 0, 11, true);
            gpu.copyColumns(gwide, 20, f32(d, narrow), 0, 11, true);
            close(wide, gwide, 1e-6, "copyColumns accumulating");
        }
    }

    @Test
    void rmsNormAndItsGradientsMatchTheCpu() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(32);
        for (int cols : new int[] {200, 4096}) {
            for (boolean weighted : new boolean[] {true, false}) {
                try (var scope = MemoryScope.open()) {
                    int rows = 19;
                    float eps = 1e-6f;
                    Tensor x = bf16Normal(random, 1, rows, cols), dy = bf16Normal(random, 1, rows, cols);
                    Tensor w = weighted ? bf16Normal(random, 1, cols) : null;
                    Tensor y = Tensor.zeros(rows, cols), gy = gpu.activations(rows, cols);
                    cpu.rmsNorm(y, x, w, eps);
                    gpu.rmsNorm(gy, act(d, x), w == null ? null : f32(d, w), eps);
                    close(y, gy, BF16, "rmsNorm " + cols);
                    Tensor dx = bf16Normal(random, 1, rows, cols), dw = weighted ? bf16Normal(random, 1, cols) : null;
                    Tensor gdx = f32(d, dx), gdw = dw == null ? null : f32(d, dw);
                    cpu.rmsNormBackward(dx, dw, dy, x, w, eps);
                    gpu.rmsNormBackward(gdx, gdw, f32(d, dy), act(d, x), w == null ? null : f32(d, w), eps);
                    close(dx, gdx, 1e-4, "rmsNorm dx " + cols);
                    if (weighted) {
                        close(dw, gdw, 1e-4, "rmsNorm dWeight " + cols);
                    }
                }
            }
        }
    }

    @Test
    void everyGatedUnitAndItsGradientMatchesTheCpuSeparateAndFused() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(33);
        GluParams[] all = {GluParams.swiglu(), GluParams.gated(Activation.GELU_TANH), GluParams.gated(Activation.GELU),
                new GluParams.Gated(Activation.SILU, GluParams.Layout.INTERLEAVED), GluParams.gptOss(),
                new GluParams.Clamped(1.702f, 7f, GluParams.Layout.HALVES)};
        for (int inter : new int[] {64, 30}) {
            int rows = 23;
            for (GluParams p : all) {
                try (var scope = MemoryScope.open()) {
                    String what = p + " I " + inter;
                    Tensor gate = bf16Normal(random, 3, rows, inter), up = bf16Normal(random, 3, rows, inter);
                    Tensor dy = bf16Normal(random, 1, rows, inter);
                    Tensor y = Tensor.zeros(rows, inter), gy = gpu.activations(rows, inter);
                    if (!(p instanceof GluParams.Gated g && g.layout() == GluParams.Layout.INTERLEAVED)) {
                        cpu.glu(y, gate, up, p);
                        gpu.glu(gy, act(d, gate), act(d, up), p);
                        close(y, gy, BF16, what + " separate");
                        Tensor dGate = bf16Normal(random, 1, rows, inter), dUp = bf16Normal(random, 1, rows, inter);
                        Tensor gdGate = f32(d, dGate), gdUp = f32(d, dUp);
                        cpu.gluBackward(dGate, dUp, dy, gate, up, p);
                        gpu.gluBackward(gdGate, gdUp, f32(d, dy), act(d, gate), act(d, up), p);
                        close(dGate, gdGate, 1e-4, what + " separate dGate");
                        close(dUp, gdUp, 1e-4, what + " separate dUp");
                    }
                    Tensor gateUp = bf16Normal(random, 3, rows, 2 * inter);
                    cpu.glu(y, gateUp, p);
                    gpu.glu(gy, act(d, gateUp), p);
                    close(y, gy, BF16, what + " fused");
                    Tensor dGateUp = Tensor.zeros(rows, 2 * inter);
                    cpu.gluBackward(dGateUp, dy, gateUp, p);
                    for (DType gradType : new DType[] {DType.BF16, DType.F32}) {
                        Tensor gd = gpu.zeros(gradType, rows, 2 * inter);
                        gpu.gluBackward(gd, d.upload(dy, gradType), act(d, gateUp), p);
                        close(dGateUp, gd, gradType == DType.BF16 ? BF16 : 1e-4, what + " fused backward in " + gradType);
                    }
                }
            }
        }
    }

    @Test
    void ropeRotatesAsTheCpuInBothLayoutsAndItsInverseIsTheGradient() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(34);
        int tokens = 11, heads = 3, headDim = 32, rotaryDim = 24, maxPositions = 64;
        float[] invFreq = new float[rotaryDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(10000, -2.0 * i / rotaryDim);
        }
        RopeTable table = new RopeTable(invFreq, 1.25f, maxPositions);
        int[] positions = random.ints(tokens, 0, maxPositions).toArray();
        for (RopeLayout layout : RopeLayout.values()) {
            try (var scope = MemoryScope.open()) {
                Tensor x = bf16Normal(random, 1, tokens, heads * headDim);
                Tensor forward = x.copy(), backward = x.copy();
                cpu.rope(forward, positions, table, layout, headDim, rotaryDim);
                cpu.ropeBackward(backward, positions, table, layout, headDim, rotaryDim);
                Tensor gx = act(d, x), gdx = f32(d, x);
                gpu.rope(gx, positions, table, layout, headDim, rotaryDim);
                gpu.ropeBackward(gdx, positions, table, layout, headDim, rotaryDim);
                close(forward, gx, BF16, "rope " + layout);
                close(backward, gdx, 1e-5, "rope backward " + layout);
            }
        }
    }

    /** One attention shape: the spec, the rows per sequence and the sequences. */
    private record Case(AttentionSpec spec, int length, int sequences, boolean sinks) {
    }

    @Test
    void attentionOnTensorCoresAndCudaCoresAndItsGradientMatchTheCpu() {
        Case[] cases = {
                new Case(AttentionSpec.of(4, 2, 64), 77, 2, false),
                new Case(AttentionSpec.of(4, 4, 128).withSlidingWindow(40), 130, 1, false),
                new Case(AttentionSpec.of(6, 2, 64), 65, 1, true),
                new Case(AttentionSpec.of(4, 2, 24), 45, 2, true),
                new Case(new AttentionSpec(4, 4, 24, 16, 0.3f, 0), 33, 1, false),
                // The tensor-core backward's shapes: d 64 and 128, groups of 4 query heads, lengths on either side of
                // its 64-row tiles, windows narrower and wider than a tile, sinks.
                new Case(AttentionSpec.of(4, 1, 64), 1, 3, true),
                new Case(AttentionSpec.of(4, 1, 128), 63, 3, true),
                new Case(AttentionSpec.of(8, 2, 64).withSlidingWindow(17), 200, 1, false),
                new Case(AttentionSpec.of(8, 2, 128).withSlidingWindow(100), 200, 2, true),
                new Case(AttentionSpec.of(8, 2, 128), 65, 2, false)};
        checkAttention(Precision.BF16, 35, cases);
    }

    /**
     * Attention forward, backward (added into, as every backward step's) and decoding against a cache on the GPU in
     * {@code precision} against the CPU. BF16 takes BF16-rounded inputs and also checks the tensor-core kernels
     * against the CUDA-core ones; F32 takes unrounded inputs, so a stray BF16 or TF32 rounding would show.
     */
    private void checkAttention(Precision precision, long seed, Case... cases) {
        boolean bf16 = precision == Precision.BF16;
        double tolerance = bf16 ? BF16 : FLOAT32;
        CudaDevice d = Gpu.device(precision);
        CudaBackend gpu = d.backend();
        var random = new Random(seed);
        for (Case c : cases) {
            try (var scope = MemoryScope.open()) {
                AttentionSpec s = c.spec();
                int rows = c.length() * c.sequences();
                String what = precision + " " + s + " × " + c.sequences() + " of " + c.length()
                        + (c.sinks() ? " with sinks" : "");
                Tensor q = input(random, bf16, rows, s.heads() * s.headDim());
                Tensor k = input(random, bf16, rows, s.kvHeads() * s.headDim());
                Tensor v = input(random, bf16, rows, s.kvHeads() * s.valueHeadDim());
                Tensor sinks = c.sinks() ? input(random, bf16, s.heads()) : null;
                Tensor y = Tensor.zeros(rows, s.heads() * s.valueHeadDim());
                Object lse = cpu.attention(y, q, k, v, c.sequences(), s, sinks, true);
                DType type = gpu.activationType();
                Tensor gq = d.upload(q, type), gk = d.upload(k, type), gv = d.upload(v, type);
                Tensor gsinks = sinks == null ? null : f32(d, sinks);
                Tensor gy = gpu.activations(y.shape());
                assertEquals(bf16 ? DType.BF16 : DType.F32, gy.dtype(), what + ": activations in the device's precision");
                Object glse = gpu.attention(gy, gq, gk, gv, c.sequences(), s, gsinks, true);
                boolean tensorCores = bf16 && CudaBackend.flashSupports(s);
                String kind = tensorCores ? " (tensor cores)" : "";
                close(y, gy, tolerance, what + " forward" + kind);
                if (bf16) {
                    Tensor tiled = gpu.activations(y.shape()), tiledLse = gpu.zeros(DType.F32, rows, s.heads());
                    gpu.attend(tiled, tiledLse, gq, gk, gv, c.sequences(), 0, s, gsinks, false);
                    close(y, tiled, BF16, what + " forward (CUDA cores)");
                    TensorAssert.assertClose(values(tiledLse), Tensor.of(Gpu.asFloats((Tensor) glse), rows, s.heads()),
                            1e-3, what + ": the two kernels' log-sum-exps");
                }

                Tensor dy = input(random, bf16, y.shape());
                Tensor dq = Tensor.zeros(q.shape()), dk = Tensor.zeros(k.shape()), dv = Tensor.zeros(v.shape());
                Tensor dSinks = sinks == null ? null : Tensor.zeros(s.heads());
                // The CPU's backward takes the GPU's output: y enters only through D = rowsum(dy ⊙ y), where its
                // rounding (BF16) is no part of the backward's arithmetic, yet with one visible key (length 1) D nearly
                // cancels that row's dy·v and the rounding alone would exceed the tolerance.
                Tensor gpuY = Tensor.of(Gpu.asFloats(gy), y.shape());
                cpu.attentionBackward(lse, dq, dk, dv, dSinks, dy, q, k, v, gpuY, c.sequences(), s, sinks);
                Tensor gdq = gpu.zeros(DType.F32, q.shape()), gdk = gpu.zeros(DType.F32, k.shape());
                Tensor gdv = gpu.zeros(DType.F32, v.shape()), gdSinks = sinks == null ? null : gpu.zeros(DType.F32, s.heads());
                gpu.attentionBackward(glse, gdq, gdk, gdv, gdSinks, f32(d, dy), gq, gk, gv, gy, c.sequences(), s, gsinks);
                close(dq, gdq, tolerance, what + " dq" + kind);
                close(dk, gdk, tolerance, what + " dk" + kind);
                close(dv, gdv, tolerance, what + " dv" + kind);
                if (sinks != null) {
                    close(dSinks, gdSinks, tolerance, what + " dSinks");
                }
                if (tensorCores) {
                    Tensor tdq = gpu.zeros(DType.F32, q.shape()), tdk = gpu.zeros(DType.F32, k.shape());
                    Tensor tdv = gpu.zeros(DType.F32, v.shape());
                    gpu.attendBackward((Tensor) glse, tdq, tdk, tdv, null, f32(d, dy), gq, gk, gv, gy, c.sequences(), s,
                            gsinks, false);
                    close(dq, tdq, BF16, what + " dq (CUDA cores)");
                    close(tdq, gdq, BF16, what + " dq: tensor cores against CUDA cores");
                    close(tdk, gdk, BF16, what + " dk: tensor cores against CUDA cores");
                    close(tdv, gdv, BF16, what + " dv: tensor cores against CUDA cores");
                }
                // The gradients are added into, as every backward step's: a second pass doubles them.
                gpu.attentionBackward(glse, gdq, gdk, gdv, null, f32(d, dy), gq, gk, gv, gy, c.sequences(), s, gsinks);
                cpu.scale(dq, 2);
                cpu.scale(dk, 2);
                cpu.scale(dv, 2);
                close(dq, gdq, tolerance, what + " dq added twice");
                close(dk, gdk, tolerance, what + " dk added twice");
                close(dv, gdv, tolerance, what + " dv added twice");

                // Decoding: 3 new queries at positions 50.. against a cache of 53 keys (one sequence).
                if (c.sequences() == 1 && c.length() >= 53) {
                    Tensor y3 = Tensor.zeros(3, s.heads() * s.valueHeadDim()), gy3 = gpu.activations(y3.shape());
                    cpu.attentionWithCache(y3, q.slice(50, 53), k.slice(0, 53), v.slice(0, 53), 50, s, sinks);
                    gpu.attentionWithCache(gy3, gq.slice(50, 53), gk.slice(0, 53), gv.slice(0, 53), 50, s, gsinks);
                    close(y3, gy3, tolerance, what + " against a cache");
                    close(y.slice(50, 53), gy3, tolerance, what + ": the cache gives the whole sequence's rows");
                }
            }
        }
    }

    /** Standard normal values, rounded to BF16 where the test is of BF16 arithmetic. */
    private static Tensor input(Random random, boolean bf16, int... shape) {
        return bf16 ? bf16Normal(random, 1, shape) : normal(random, 1, shape);
    }

    @Test
    void crossEntropyAndItsGradientMatchTheCpu() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(36);
        int n = 9, vocab = 300;
        int[] targets = random.ints(n, 0, vocab).toArray();
        targets[4] = -100;
        try (var scope = MemoryScope.open()) {
            Tensor logits = bf16Normal(random, 3, n, vocab), glogits = act(d, logits);
            Backend.CrossEntropy ce = cpu.crossEntropy(logits, targets, -100);
            Backend.CrossEntropy gce = gpu.crossEntropy(glogits, targets, -100);
            assertEquals(ce.counted(), gce.counted());
            assertEquals(ce.loss(), gce.loss(), 1e-5 * Math.abs(ce.loss()), "mean cross-entropy");
            Tensor dLogits = bf16Normal(random, 1, n, vocab), gdLogits = f32(d, dLogits);
            cpu.crossEntropyBackward(dLogits, ce, logits, targets, -100, 0.125f);
            gpu.crossEntropyBackward(gdLogits, gce, glogits, targets, -100, 0.125f);
            close(dLogits, gdLogits, 1e-5, "dLogits");
        }
    }

    @Test
    void gathersScattersAndTheCombineStepMatchTheCpu() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(37);
        int rows = 40, cols = 72, picked = 57;
        int[] index = random.ints(picked, 0, rows).toArray();
        float[] weight = new float[picked];
        for (int i = 0; i < picked; i++) {
            weight[i] = (float) random.nextGaussian();
        }
        try (var scope = MemoryScope.open()) {
            Tensor src = bf16Normal(random, 1, rows, cols), gsrc = act(d, src);
            for (Tensor table : new Tensor[] {gsrc, f32(d, src)}) {
                Tensor gathered = Tensor.zeros(picked, cols), ggathered = gpu.activations(picked, cols);
                cpu.gatherRows(gathered, src, index);
                gpu.gatherRows(ggathered, table, index);
                close(gathered, ggathered, 0, "gather from " + table.dtype());
            }
            Tensor rowsIn = bf16Normal(random, 1, picked, cols), growsIn = act(d, rowsIn);
            Tensor dst = bf16Normal(random, 1, rows, cols), gdst = f32(d, dst);
            cpu.scatterAddRows(dst, rowsIn, index, weight);
            gpu.scatterAddRows(gdst, growsIn, index, weight);
            close(dst, gdst, 1e-5, "weighted scatter-add");
            cpu.embeddingBackward(dst, rowsIn, index);
            gpu.embeddingBackward(gdst, growsIn, index);
            close(dst, gdst, 1e-5, "embedding gradient");

            Tensor dOut = bf16Normal(random, 1, rows, cols), y = bf16Normal(random, 1, picked, cols);
            Tensor dy = Tensor.zeros(picked, cols), gdy = gpu.activations(picked, cols);
            float[] dots = new float[picked], gdots = new float[picked];
            cpu.combineBackward(dy, dots, dOut, y, index, weight);
            gpu.combineBackward(gdy, gdots, f32(d, dOut), act(d, y), index, weight);
            close(dy, gdy, BF16, "combine backward: dy");
            TensorAssert.assertClose(toDoubles(dots), gdots, 1e-5, "combine backward: gate gradients");

            float[] scale = new float[rows], rowDots = new float[rows], grDots = new float[rows];
            for (int i = 0; i < rows; i++) {
                scale[i] = (float) random.nextGaussian();
            }
            Tensor target = bf16Normal(random, 1, rows, cols), gtarget = f32(d, target);
            cpu.addScaledRows(target, src, scale);
            gpu.addScaledRows(gtarget, gsrc, scale);
            cpu.scaleRows(target, scale);
            gpu.scaleRows(gtarget, scale);
            close(target, gtarget, 1e-5, "addScaledRows then scaleRows");
            cpu.rowDots(rowDots, target, src);
            gpu.rowDots(grDots, gtarget, gsrc);
            TensorAssert.assertClose(toDoubles(rowDots), grDots, 1e-5, "rowDots");
        }
    }

    /** Normal F32 values with every mantissa bit in use (not BF16-rounded). */
    private static Tensor normal(Random random, double std, int... shape) {
        return RandomTensors.normal(random, std, DType.F32, shape);
    }

    /**
     * Products of up to {@link CudaBackend#FEW_ROWS} rows (decoding) take gemv.cu's kernel instead of cuBLAS: on its
     * vector path and its scalar one (a width not a multiple of 8), BF16 and F32 weights against BF16 and F32 rows,
     * into BF16 and F32, it gives cuBLAS's products, and an F32 result of F32 weights (a router's logits) the CPU's
     * to float32 accuracy.
     */
    @Test
    void productsOfAFewRowsGiveCublasProducts() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(43);
        for (int[] shape : new int[][] {{1, 1024, 777}, {3, 1024, 96}, {8, 136, 50}, {2, 36, 50}}) {
            int m = shape[0], in = shape[1], out = shape[2];
            Tensor x = bf16Normal(random, 1, m, in), w = bf16Normal(random, 1, out, in);
            Tensor y = Tensor.zeros(m, out);
            MatMul.forward(y, x, w);
            try (var scope = MemoryScope.open()) {
                for (DType wType : new DType[] {DType.BF16, DType.F32}) {
                    for (DType xType : new DType[] {DType.BF16, DType.F32}) {
                        Tensor gx = d.upload(x, xType), gw = d.upload(w, wType);
                        String what = m + " rows of " + in + " (" + xType + ") · " + wType + " [" + out + ", " + in + "]ᵀ";
                        Tensor kernel = gpu.activations(m, out), cublas = gpu.activations(m, out);
                        gpu.matmul(kernel, gx, gw);
                        d.blas().linear(cublas, gpu.convert(gx, DType.BF16), gpu.convert(gw, DType.BF16), 0f);
                        close(values(cublas), kernel, 1e-2, what + " into BF16, against cuBLAS");
                        close(y, kernel, BF16, what + " into BF16, against the CPU");
                        if (wType == DType.F32) {
                            Tensor logits = d.allocate(DType.F32, m, out);
                            gpu.matmul(logits, gx, gw);
                            close(y, logits, FLOAT32, what + " into F32 (a router's logits)");
                        }
                    }
                }
            }
        }
    }

    private static void close(double[] expected, Tensor actual, double tolerance, String what) {
        TensorAssert.assertClose(expected, Tensor.of(Gpu.asFloats(actual), actual.shape()), tolerance, what);
    }

    /** A shared expert's sigmoid gate applied where its logits are gives what the host's gate values give. */
    @Test
    void sigmoidGatedRowsAddWhatTheHostsGateValuesAdd() {
        CudaDevice d = Gpu.device();
        Backend gpu = d.backend();
        var random = new Random(44);
        int rows = 5, cols = 300;
        Tensor z = bf16Normal(random, 2, rows, 1), src = bf16Normal(random, 1, rows, cols), dst = bf16Normal(random, 1, rows, cols);
        Tensor expected = dst.copy();
        cpu.addSigmoidGatedRows(expected, src, z);
        try (var scope = MemoryScope.open()) {
            Tensor gdst = f32(d, dst), hostGates = f32(d, dst);
            gpu.addSigmoidGatedRows(gdst, act(d, src), f32(d, z));
            close(expected, gdst, 1e-6, "σ(z)-gated rows on the device against the host");
            float[] gate = new float[rows];
            for (int t = 0; t < rows; t++) {
                gate[t] = (float) (1.0 / (1.0 + Math.exp(-z.getFloat(t))));
            }
            gpu.addScaledRows(hostGates, act(d, src), gate);
            assertEquals(java.util.Arrays.toString(Gpu.asFloats(hostGates)), java.util.Arrays.toString(Gpu.asFloats(gdst)),
                    "the device's σ is the host's: the same numbers as gate values computed there");
        }
    }

    @Test
    void productsInF32PrecisionAreTrueF32() {
        CudaDevice d = Gpu.device(Precision.F32);
        Backend gpu = d.backend();
        assertEquals(DType.F32, gpu.activationType());
        var random = new Random(41);
        int m = 37, in = 301, out = 29;
        Tensor x = normal(random, 1, m, in), w = normal(random, 1, out, in), dy = normal(random, 1, m, out);
        Tensor wt = normal(random, 1, in, out), dw = normal(random, 1, out, in), dxBefore = normal(random, 1, m, in);
        Tensor y = Tensor.zeros(m, out), y2 = Tensor.zeros(m, out), dx = dxBefore.copy(), dwAfter = dw.copy();
        MatMul.forward(y, x, w);
        MatMul.multiply(y2, x, wt);
        MatMul.backwardInput(dx, dy, w, true);
        MatMul.backwardWeight(dwAfter, dy, x, true);
        try (var scope = MemoryScope.open()) {
            Tensor gx = f32(d, x), gw = f32(d, w), gdy = f32(d, dy);
            Tensor gy = gpu.activations(m, out), gy2 = gpu.activations(m, out), gdx = f32(d, dxBefore);
            Tensor gdw = f32(d, dw);
            gpu.matmul(gy, gx, gw);
            gpu.multiply(gy2, gx, f32(d, wt));
            gpu.matmulBackwardInput(gdx, gdy, gw, true);
            gpu.matmulBackwardWeight(gdw, gdy, gx, true);
            close(y, gy, FLOAT32, "F32 y = x·Wᵀ");
            close(y2, gy2, FLOAT32, "F32 y = x·W");
            close(dx, gdx, FLOAT32, "F32 dx += dy·W");
            close(dwAfter, gdw, FLOAT32, "F32 dW += dyᵀ·x");

            // A BF16 weight (a BF16 checkpoint's) is widened exactly: the product is that of its values in F32.
            Tensor rounded = w.to(DType.BF16).to(DType.F32), yRounded = Tensor.zeros(m, out);
            MatMul.forward(yRounded, x, rounded);
            gpu.matmul(gy, gx, d.upload(rounded, DType.BF16));
            close(yRounded, gy, FLOAT32, "F32 y = x·Wᵀ of a BF16 weight");
        }
    }

    @Test
    void everyOtherOperationInF32PrecisionMatchesTheCpuToFloat32Accuracy() {
        CudaDevice d = Gpu.device(Precision.F32);
        Backend gpu = d.backend();
        var random = new Random(42);
        int rows = 211, cols = 37;
        try (var scope = MemoryScope.open()) {
            Tensor a = normal(random, 1, rows, cols), b = normal(random, 1, rows, cols), dy = normal(random, 1, rows, cols);
            Tensor ga = f32(d, a), gb = f32(d, b), gdy = f32(d, dy);
            Tensor y = Tensor.zeros(rows, cols), gy = gpu.activations(rows, cols);
            cpu.add(y, a, b);
            gpu.add(gy, ga, gb);
            close(y, gy, FLOAT32, "F32 add");
            cpu.mul(y, a, b);
            gpu.mul(gy, ga, gb);
            close(y, gy, FLOAT32, "F32 mul");
            Tensor acc = a.copy(), gacc = f32(d, a);
            cpu.axpy(-0.75f, b, acc);
            gpu.axpy(-0.75f, gb, gacc);
            cpu.scale(acc, 1.5f);
            gpu.scale(gacc, 1.5f);
            Tensor v = normal(random, 1, cols);
            cpu.addRowVector(acc, v);
            gpu.addRowVector(gacc, f32(d, v));
            close(acc, gacc, FLOAT32, "F32 axpy, scale, addRowVector");
            Tensor g = normal(random, 1, rows);
            cpu.scaleRows(y, a, g);
            gpu.scaleRows(gy, ga, f32(d, g));
            close(y, gy, FLOAT32, "F32 scaleRows");
            cpu.sigmoid(y, a);
            gpu.sigmoid(gy, ga);
            close(y, gy, FLOAT32, "F32 sigmoid");
            cpu.clamp(y, a, 0.7f);
            gpu.clamp(gy, ga, 0.7f);
            close(y, gy, FLOAT32, "F32 clamp");
            for (Activation kind : Activation.values()) {
                cpu.activation(kind, y, a);
                gpu.activation(kind, gy, ga);
                close(y, gy, FLOAT32, "F32 " + kind + " forward");
                Tensor dx = Tensor.zeros(rows, cols), gdx = gpu.zeros(DType.F32, rows, cols);
                cpu.activationBackward(kind, dx, dy, a);
                gpu.activationBackward(kind, gdx, gdy, ga);
                close(dx, gdx, FLOAT32, "F32 " + kind + " backward");
            }
            Tensor narrow = Tensor.zeros(rows, 11), gnarrow = gpu.activations(rows, 11);
            cpu.copyColumns(narrow, 0, a, 13, 11, false);
            gpu.copyColumns(gnarrow, 0, ga, 13, 11, false);
            close(narrow, gnarrow, 0, "F32 copyColumns");

            for (Tensor w : new Tensor[] {normal(random, 1, cols), null}) {
                cpu.rmsNorm(y, a, w, 1e-6f);
                gpu.rmsNorm(gy, ga, w == null ? null : f32(d, w), 1e-6f);
                close(y, gy, FLOAT32, "F32 rmsNorm" + (w == null ? " without a weight" : ""));
                Tensor dx = Tensor.zeros(rows, cols), dw = w == null ? null : Tensor.zeros(cols);
                Tensor gdx = gpu.zeros(DType.F32, rows, cols), gdw = w == null ? null : gpu.zeros(DType.F32, cols);
                cpu.rmsNormBackward(dx, dw, dy, a, w, 1e-6f);
                gpu.rmsNormBackward(gdx, gdw, gdy, ga, w == null ? null : f32(d, w), 1e-6f);
                close(dx, gdx, FLOAT32, "F32 rmsNorm dx");
                if (w != null) {
                    close(dw, gdw, FLOAT32, "F32 rmsNorm dWeight");
                }
            }

            int inter = 30;
            for (GluParams p : new GluParams[] {GluParams.swiglu(), GluParams.gated(Activation.GELU_TANH),
                    new GluParams.Gated(Activation.SILU, GluParams.Layout.INTERLEAVED), GluParams.gptOss()}) {
                Tensor gateUp = normal(random, 3, rows, 2 * inter), dAct = normal(random, 1, rows, inter);
                Tensor act = Tensor.zeros(rows, inter), gact = gpu.activations(rows, inter);
                cpu.glu(act, gateUp, p);
                gpu.glu(gact, f32(d, gateUp), p);
                close(act, gact, FLOAT32, "F32 " + p + " fused");
                Tensor dGateUp = Tensor.zeros(rows, 2 * inter), gdGateUp = gpu.zeros(DType.F32, rows, 2 * inter);
                cpu.gluBackward(dGateUp, dAct, gateUp, p);
                gpu.gluBackward(gdGateUp, f32(d, dAct), f32(d, gateUp), p);
                close(dGateUp, gdGateUp, FLOAT32, "F32 " + p + " fused backward");
                if (p.layout() == GluParams.Layout.HALVES) {
                    Tensor gate = normal(random, 3, rows, inter), up = normal(random, 3, rows, inter);
                    cpu.glu(act, gate, up, p);
                    gpu.glu(gact, f32(d, gate), f32(d, up), p);
                    close(act, gact, FLOAT32, "F32 " + p + " separate");
                    Tensor dGate = Tensor.zeros(rows, inter), dUp = Tensor.zeros(rows, inter);
                    Tensor gdGate = gpu.zeros(DType.F32, rows, inter), gdUp = gpu.zeros(DType.F32, rows, inter);
                    cpu.gluBackward(dGate, dUp, dAct, gate, up, p);
                    gpu.gluBackward(gdGate, gdUp, f32(d, dAct), f32(d, gate), f32(d, up), p);
                    close(dGate, gdGate, FLOAT32, "F32 " + p + " separate dGate");
                    close(dUp, gdUp, FLOAT32, "F32 " + p + " separate dUp");
                }
            }

            int tokens = 11, heads = 3, headDim = 32, rotaryDim = 24;
            float[] invFreq = new float[rotaryDim / 2];
            for (int i = 0; i < invFreq.length; i++) {
                invFreq[i] = (float) Math.pow(10000, -2.0 * i / rotaryDim);
            }
            RopeTable table = new RopeTable(invFreq, 1f, 64);
            int[] positions = random.ints(tokens, 0, 64).toArray();
            for (RopeLayout layout : RopeLayout.values()) {
                Tensor x = normal(random, 1, tokens, heads * headDim), forward = x.copy(), backward = x.copy();
                cpu.rope(forward, positions, table, layout, headDim, rotaryDim);
                cpu.ropeBackward(backward, positions, table, layout, headDim, rotaryDim);
                Tensor gx = f32(d, x), gback = f32(d, x);
                gpu.rope(gx, positions, table, layout, headDim, rotaryDim);
                gpu.ropeBackward(gback, positions, table, layout, headDim, rotaryDim);
                close(forward, gx, FLOAT32, "F32 rope " + layout);
                close(backward, gback, FLOAT32, "F32 rope backward " + layout);
            }

            int n = 9, vocab = 300;
            int[] targets = random.ints(n, 0, vocab).toArray();
            targets[4] = -100;
            Tensor logits = normal(random, 3, n, vocab);
            Backend.CrossEntropy ce = cpu.crossEntropy(logits, targets, -100);
            Backend.CrossEntropy gce = gpu.crossEntropy(f32(d, logits), targets, -100);
            assertEquals(ce.loss(), gce.loss(), FLOAT32 * Math.abs(ce.loss()), "F32 mean cross-entropy");
            Tensor dLogits = Tensor.zeros(n, vocab), gdLogits = gpu.zeros(DType.F32, n, vocab);
            cpu.crossEntropyBackward(dLogits, ce, logits, targets, -100, 0.125f);
            gpu.crossEntropyBackward(gdLogits, gce, f32(d, logits), targets, -100, 0.125f);
            close(dLogits, gdLogits, FLOAT32, "F32 dLogits");

            int picked = 57;
            int[] index = random.ints(picked, 0, rows).toArray();
            float[] weight = new float[picked];
            for (int i = 0; i < picked; i++) {
                weight[i] = (float) random.nextGaussian();
            }
            Tensor gathered = Tensor.zeros(picked, cols), ggathered = gpu.activations(picked, cols);
            cpu.embedding(gathered, a, index);
            gpu.embedding(ggathered, ga, index);
            close(gathered, ggathered, 0, "F32 embedding (a gather)");
            Tensor dst = a.copy(), gdst = f32(d, a), src = normal(random, 1, picked, cols);
            cpu.scatterAddRows(dst, src, index, weight);
            gpu.scatterAddRows(gdst, f32(d, src), index, weight);
            close(dst, gdst, FLOAT32, "F32 weighted scatter-add");
            Tensor dRows = Tensor.zeros(picked, cols), gdRows = gpu.activations(picked, cols);
            float[] dots = new float[picked], gdots = new float[picked];
            cpu.combineBackward(dRows, dots, dy, src, index, weight);
            gpu.combineBackward(gdRows, gdots, gdy, f32(d, src), index, weight);
            close(dRows, gdRows, FLOAT32, "F32 combine backward: dy");
            TensorAssert.assertClose(toDoubles(dots), gdots, FLOAT32, "F32 combine backward: gate gradients");

            // The one-pass decoding path reads BF16 experts: F32 precision runs the grouped products instead.
            Tensor[] experts = {gpu.activations(2 * inter, cols)}, downs = {gpu.activations(cols, inter)};
            assertFalse(gpu.smallBatchExperts(gpu.activations(1, cols), ga.slice(0, 1), new int[] {0}, new int[] {0},
                    new float[] {1f}, experts, downs), "no BF16 one-pass path in F32 precision");
        }
    }

    @Test
    void attentionInF32PrecisionAndItsGradientMatchTheCpu() {
        // Heads of 64 and 128 take the tensor cores in BF16; in F32 every shape takes the CUDA-core kernels.
        Case[] cases = {
                new Case(AttentionSpec.of(4, 2, 64), 77, 2, false),
                new Case(AttentionSpec.of(4, 4, 128).withSlidingWindow(40), 130, 1, false),
                new Case(AttentionSpec.of(6, 2, 64), 65, 1, true),
                new Case(AttentionSpec.of(4, 2, 24), 45, 2, true),
                new Case(new AttentionSpec(4, 4, 24, 16, 0.3f, 0), 60, 1, false),
                new Case(AttentionSpec.of(8, 2, 40).withSlidingWindow(7), 70, 1, true)};
        checkAttention(Precision.F32, 43, cases);
    }

    @Test
    void memoryOfAScopeIsReleasedAndPersistentTensorsStay() {
        CudaDevice d = Gpu.device();
        Tensor kept;
        try (var scope = MemoryScope.open()) {
            kept = MemoryScope.persistent(() -> d.zeros(DType.F32, 1000));
            d.zeros(DType.F32, 1000);
        }
        // Freeing the persistent one works (the scope did not); freeing it twice does not.
        d.free(kept);
        boolean refused = false;
        try {
            d.free(kept);
        } catch (IllegalArgumentException e) {
            refused = true;
        }
        assertTrue(refused, "a tensor is freed once");
    }

    private static double[] toDoubles(float[] a) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i];
        }
        return out;
    }
}
