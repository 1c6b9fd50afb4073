package dev.moe4j.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RmsNorm;
import dev.moe4j.core.kernels.Rope;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.kernels.ScatterAdd;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.core.kernels.SwiGLU;
import dev.moe4j.core.kernels.TopK;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The row-wise kernels at the shapes of one prefill step of a Mixtral-sized layer (512 tokens, hidden 4096,
 * 32 heads of 128, FFN 14336, 8 experts top-2): each is memory-bound, so its time × bytes touched tells how
 * close it runs to the bandwidth that {@code moe4j bench matmul} measures.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class KernelsBench {
    static final int TOKENS = 512, HIDDEN = 4096, HEADS = 32, HEAD_DIM = 128, FFN = 14336, EXPERTS = 8, TOP_K = 2;

    private Tensor hidden, normed, normWeight, gateUp, ffn, logits, router, dHidden, dNormWeight, expertOut;
    private RopeTable ropeTable;
    private int[] positions, topIndex, combineIndex;
    private float[] topValue, combineWeight;

    @Setup(Level.Trial)
    public void setUp() {
        var rnd = new Random(1);
        hidden = MatMulBench.random(rnd, TOKENS, HIDDEN);
        normed = Tensor.zeros(TOKENS, HIDDEN);
        dHidden = Tensor.zeros(TOKENS, HIDDEN);
        normWeight = MatMulBench.random(rnd, HIDDEN).to(DType.BF16);
        dNormWeight = Tensor.zeros(DType.F32, HIDDEN);
        gateUp = MatMulBench.random(rnd, TOKENS, 2 * FFN);
        ffn = Tensor.zeros(TOKENS, FFN);
        logits = MatMulBench.random(rnd, TOKENS, HEADS * TOKENS / 16); // attention-like rows
        router = MatMulBench.random(rnd, TOKENS, EXPERTS);
        ropeTable = new RopeTable(RopeFrequencies.standard(1e6, HEAD_DIM), 4096);
        positions = new int[TOKENS];
        for (int t = 0; t < TOKENS; t++) {
            positions[t] = t;
        }
        topIndex = new int[TOKENS * TOP_K];
        topValue = new float[TOKENS * TOP_K];
        expertOut = MatMulBench.random(rnd, TOKENS * TOP_K, HIDDEN);
        combineIndex = new int[TOKENS * TOP_K];
        combineWeight = new float[TOKENS * TOP_K];
        for (int i = 0; i < combineIndex.length; i++) {
            combineIndex[i] = i / TOP_K;
            combineWeight[i] = 0.5f;
        }
    }

    @Benchmark
    public Tensor rmsNormForward() {
        RmsNorm.forward(normed, hidden, normWeight, 1e-5f);
        return normed;
    }

    @Benchmark
    public Tensor rmsNormBackward() {
        RmsNorm.backward(dHidden, dNormWeight, normed, hidden, normWeight, 1e-5f);
        return dHidden;
    }

    @Benchmark
    public Tensor swigluForward() {
        SwiGLU.forward(ffn, gateUp, GluParams.swiglu());
        return ffn;
    }

    @Benchmark
    public Tensor gegluForward() {
        SwiGLU.forward(ffn, gateUp, GluParams.gated(Activation.GELU));
        return ffn;
    }

    @Benchmark
    public Tensor softmaxForward() {
        Softmax.forward(logits, logits);
        return logits;
    }

    @Benchmark
    public Tensor ropeForward() {
        Rope.forward(hidden, positions, ropeTable, RopeLayout.HALF, HEAD_DIM, HEAD_DIM);
        return hidden;
    }

    @Benchmark
    public int[] routerTopK() {
        TopK.select(router, TOP_K, topIndex, topValue);
        return topIndex;
    }

    @Benchmark
    public Tensor combineScatterAdd() {
        // the expert outputs (TOKENS·TOP_K rows) back to their tokens, weighted by the gates
        ScatterAdd.rows(dHidden, expertOut, combineIndex, combineWeight);
        return dHidden;
    }
}
