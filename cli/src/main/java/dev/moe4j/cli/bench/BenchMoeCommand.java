package dev.moe4j.cli.bench;

import dev.moe4j.cli.DeviceOption;
import dev.moe4j.core.perf.Environment;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.bench.MoeLayerBenchmark;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;

/**
 * {@code moe4j bench moe}: the MoE layer's forward and backward at one shape. On the GPU (the default where one
 * is found) it defaults to a Mixtral-8x7B layer and reports TFLOP/s against the BF16 matrix rate measured in the
 * same run; on the CPU it times each routing strategy against its experts' matmuls alone.
 */
@Command(name = "moe",
        mixinStandardHelpOptions = true,
        description = {"Times the MoE layer (forward, and forward + backward as training runs it).",
                "--device cuda (default where a GPU is found): a Mixtral-8x7B layer (16384 tokens, H 4096, I 14336, "
                        + "E 8, top-2, bf16), TFLOP/s as a fraction of cuBLAS's bf16 rate on 8192³ measured first, "
                        + "plus one decode step of a Qwen3-30B-A3B MoE layer against the device's copy bandwidth.",
                "--device cpu: every routing strategy at a smaller shape against its experts' matmuls alone."})
public final class BenchMoeCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    BenchOptions options;

    @Mixin
    DeviceOption device;

    @Option(names = "--tokens", paramLabel = "T", description = "Tokens per pass (default: 16384 on the GPU, 1024 on the CPU).")
    Integer tokens;

    @Option(names = "--hidden", paramLabel = "H", description = "Model width (default: 4096 on the GPU, 1024 on the CPU).")
    Integer hidden;

    @Option(names = "--intermediate", paramLabel = "I", description = "Each expert's width (default: 14336 on the GPU, 2816 on the CPU).")
    Integer intermediate;

    @Option(names = "--experts", paramLabel = "E", defaultValue = "8", description = "Routed experts (default: ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "2", description = "Experts per token (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--repeats", paramLabel = "N", description = "Timed passes per figure, median reported (default: 10, 2 with --quick).")
    Integer repeats;

    @Override
    public void run() {
        boolean gpu = device.resolve() == DeviceOption.Device.CUDA;
        boolean quick = options.quick();
        var shape = new MoeLayerBenchmark.Shape(
                positive("--tokens", tokens != null ? tokens : gpu ? (quick ? 1024 : 16384) : 1024),
                positive("--hidden", hidden != null ? hidden : gpu ? (quick ? 512 : 4096) : 1024),
                positive("--intermediate", intermediate != null ? intermediate : gpu ? (quick ? 1024 : 14336) : 2816),
                positive("--experts", experts), positive("--top-k", topK));
        if (topK > experts) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--top-k (" + topK + ") must be at most --experts (" + experts + ")");
        }
        int n = positive("--repeats", repeats != null ? repeats : quick ? 2 : 10);
        PrintWriter out = spec.commandLine().getOut();
        if (gpu) {
            try (CudaDevice d = Cuda.open(0)) {
                BenchMoeGpu.run(d, shape, n, quick, options.json(), out);
            }
        } else {
            runCpu(shape, n, out);
        }
        out.flush();
    }

    private void runCpu(MoeLayerBenchmark.Shape s, int n, PrintWriter out) {
        options.applyThreads();
        MachineLimits limits = options.measureLimits();
        var shape = new MoeBenchmark.Shape(s.tokens(), s.hidden(), s.intermediate(), s.experts(), s.topK());
        out.println("moe4j bench moe --device cpu: " + Environment.current().describe());
        out.printf("peak FMA rate %.1f GFLOP/s; layer: %d tokens, H %d, I %d, E %d, top-%d, f32%n", limits.peakGflops(),
                s.tokens(), s.hidden(), s.intermediate(), s.experts(), s.topK());
        out.printf("%-62s %10s %10s %8s %7s%n", "strategy", "layer s", "matmuls s", "ratio", "GFLOP/s");
        MoeBenchmark.runAll(shape, 1, n, r -> {
            out.printf("%-62s %10.4f %10.4f %8.2f %7.1f%n", r.strategy(), r.layerSeconds(), r.expertMatmulSeconds(),
                    r.ratio(), r.expertFlops() / r.layerSeconds() / 1e9);
            out.flush();
        });
    }

    private int positive(String option, int value) {
        if (value < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), option + " must be at least 1, got " + value);
        }
        return value;
    }
}
