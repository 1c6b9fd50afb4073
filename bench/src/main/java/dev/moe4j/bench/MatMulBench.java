package dev.moe4j.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * MatMul forward and both gradients at a transformer's shapes: {@code rows} tokens against a [size, size]
 * weight. rows = 1 is decode (bound by reading W; note that a single W of 32-64 MiB partly stays in a large L3
 * between calls, which {@code moe4j bench matmul} avoids by rotating copies), rows = 512 is prefill and training
 * (bound by FMAs).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class MatMulBench {
    @Param({"F32", "BF16"})
    public DType type;

    @Param({"1", "512"})
    public int rows;

    @Param({"4096"})
    public int size;

    private Tensor x, w, y, dy, dx, dw;

    @Setup(Level.Trial)
    public void setUp() {
        var rnd = new Random(1);
        x = random(rnd, rows, size);
        dy = random(rnd, rows, size);
        w = random(rnd, size, size).to(type);
        y = Tensor.zeros(rows, size);
        dx = Tensor.zeros(rows, size);
        dw = Tensor.zeros(size, size);
    }

    static Tensor random(Random rnd, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) rnd.nextGaussian());
        }
        return t;
    }

    @Benchmark
    public Tensor forward() {
        MatMul.forward(y, x, w);
        return y;
    }

    @Benchmark
    public Tensor backwardInput() {
        MatMul.backwardInput(dx, dy, w, false);
        return dx;
    }

    /** The weight gradient is F32 whatever W's type; measured once per shape (type does not matter). */
    @Benchmark
    public Tensor backwardWeight() {
        MatMul.backwardWeight(dw, dy, x, false);
        return dw;
    }
}
