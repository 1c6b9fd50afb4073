package dev.moe4j.cli.bench;

import dev.moe4j.cli.DeviceOption;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.perf.Environment;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.core.perf.Timing;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.Precision;
import dev.moe4j.cuda.bench.MoeLayerBenchmark;
import dev.moe4j.moe.perf.MoeBenchmark;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code moe4j bench moe}: on the CPU, the MoE layer's forward + backward per routing strategy, against the matmuls
 * its experts do alone and against one dense matmul chain of the same FLOPs, with GFLOP/s as a fraction of the peak
 * FMA rate measured in the same run. On a GPU ({@code --device cuda}, the default where one is found), the GPU
 * layer at a Mixtral-8x7B layer's shape against cuBLAS's bf16 rate measured in the same run ({@link BenchMoeGpu}).
 */
@Command(name = "moe",
        mixinStandardHelpOptions = true,
        description = {"Times the MoE layer (forward + backward, training mode) for each routing strategy at a "
                + "Mixtral-like shape, and the same experts' matmuls alone: the ratio is the cost of routing, "
                + "permutation, activations, combine and balance losses (target: at most 1.25).",
                "Also times one dense SwiGLU FFN with the FLOPs of top-k's experts, and measures the peak FMA rate "
                        + "first, in the same run, with the same threads.",
                "--device cuda (the default where an NVIDIA GPU is found): the GPU layer (softmax top-k renormalised, "
                        + "dropless) at 16384 tokens, H 4096, I 14336, E 8, top-2 unless sizes are given, as TFLOP/s "
                        + "against cuBLAS's bf16 rate on 8192³ measured first, plus one decoding step of a "
                        + "Qwen3-30B-A3B MoE layer against the device's copy bandwidth (in bf16 only: --precision f32 "
                        + "is not timed here)."})
public final class BenchMoeCommand implements Runnable {
    private static final String ALL = "topk, switch, capacity, deepseek, noisy, expert-choice, soft, dense";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    BenchOptions options;

    @Mixin
    DeviceOption device;

    @Option(names = "--tokens", paramLabel = "T", defaultValue = "1024",
            description = "Tokens per forward pass (default: ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--hidden", paramLabel = "H", defaultValue = "1024",
            description = "Model width (default: ${DEFAULT-VALUE}).")
    int hidden;

    @Option(names = "--intermediate", paramLabel = "I", defaultValue = "2816",
            description = "Each expert's width (default: ${DEFAULT-VALUE}).")
    int intermediate;

    @Option(names = "--experts", paramLabel = "E", defaultValue = "8",
            description = "Routed experts (default: ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "2",
            description = "Experts per token (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--strategies", paramLabel = "NAME", split = ",",
            description = "Strategies to time, of " + ALL + " (default: all that apply but dense; deepseek needs 8, "
                    + "12, 16, ... experts and top-k <= experts / 2, noisy needs top-k < experts).")
    List<String> strategies;

    @Option(names = "--seconds", paramLabel = "S",
            description = "Minimum timed seconds per measurement (default: 3, or 0 with --quick).")
    Double seconds;

    @Option(names = "--repeats", paramLabel = "N",
            description = "GPU: timed passes per figure, the median reported (default: 10, or 2 with --quick).")
    Integer repeats;

    @Override
    public void run() {
        if (device.resolve() == DeviceOption.Device.CUDA) {
            runGpu();
            return;
        }
        DeviceOption.cpu(device.precision()); // --precision bf16 is a GPU's only
        var shape = validate();
        List<MoeBenchmark.Strategy> chosen = chosen(shape);
        options.applyThreads();
        double minSeconds = seconds != null ? seconds : options.quick() ? 0 : 3.0;
        int warmups = 1, minIterations = options.quick() ? 1 : 3;
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        // The peak is measured before and after the layers and the better is used (other work only lowers it); a
        // difference of more than 15 % says the machine was busy.
        MachineLimits before = options.measureLimits();
        if (!options.json()) {
            out.println("moe4j bench moe: " + env.describe());
            out.printf("peak FMA rate %.1f GFLOP/s, measured now with %d threads (again at the end; the better is "
                    + "used)%n", before.peakGflops(), before.threads());
            out.printf("layer: tokens %d, hidden %d, intermediate %d, experts %d, top-%d; SwiGLU experts; forward + "
                    + "backward in training mode%n", tokens, hidden, intermediate, experts, topK);
            out.flush();
        }
        Timing dense = MoeBenchmark.denseChain(shape, warmups, minIterations, minSeconds);
        double denseFlops = MoeBenchmark.flops((long) tokens * topK, hidden, intermediate);
        double denseGflops = denseFlops / dense.bestSeconds() / 1e9;
        if (!options.json()) {
            out.printf("dense chain (one SwiGLU FFN of width k·I = %d over all tokens, %.1f GFLOP): %.3f s, "
                    + "%.1f GFLOP/s, %.1f%% of peak%n", topK * intermediate, denseFlops / 1e9, dense.bestSeconds(),
                    denseGflops, 100 * denseGflops / before.peakGflops());
            out.printf("%-14s %8s %9s %9s %7s %9s %7s %8s%n", "strategy", "GFLOP", "layer s", "matmul s", "ratio",
                    "GFLOP/s", "% peak", "dropped");
            out.flush();
        }
        List<MoeBenchmark.Result> results = new ArrayList<>();
        for (var strategy : chosen) {
            var r = MoeBenchmark.run(strategy, shape, warmups, minIterations, minSeconds);
            results.add(r);
            if (!options.json()) {
                out.printf("%-14s %8.1f %9.3f %9.3f %7.3f %9.1f %6.1f%% %7.1f%%%n", strategy.key(),
                        r.expertFlops() / 1e9, r.layer().bestSeconds(), r.matmuls().bestSeconds(), r.overhead(),
                        r.layerGflops(), 100 * r.layerGflops() / before.peakGflops(), 100 * r.droppedFraction());
                out.flush();
            }
        }
        MachineLimits after = options.measureLimits();
        MachineLimits limits = before.best(after);
        boolean disturbed = before.differsFrom(after, 0.15);
        if (options.json()) {
            out.println(Json.write(report(env, limits, disturbed, shape, dense, denseFlops, results)));
        } else {
            out.printf("peak FMA rate again: %.1f GFLOP/s%s%n", after.peakGflops(), disturbed
                    ? "  (more than 15% apart: the machine was busy; rerun when it is quiet)" : "");
            out.println("times are the best call (medians in --json); layer and matmul calls alternate; ratio = layer"
                    + " time / its experts' matmuls alone; GFLOP/s = the experts' matmul FLOPs per second of layer"
                    + " time; % peak against the first peak measurement (--json: against the better)");
        }
        out.flush();
    }

    /** The GPU layer: Mixtral-8x7B's layer unless sizes are given; the CPU's strategies do not apply. */
    private void runGpu() {
        var matched = spec.commandLine().getParseResult();
        boolean quick = options.quick();
        if (device.precision() == Precision.F32) {
            // Its figures are fractions of cuBLAS's bf16 rate and of a BF16 layer's bytes: an F32 layer is not timed.
            throw new BadInputException("--precision f32: bench moe times the GPU layer in bf16 only");
        }
        for (String cpuOnly : new String[] {"--strategies", "--seconds"}) {
            if (matched.hasMatchedOption(cpuOnly)) {
                throw new CommandLine.ParameterException(spec.commandLine(), cpuOnly + " applies to --device cpu");
            }
        }
        if (!matched.hasMatchedOption("--tokens")) {
            tokens = quick ? 1024 : 16384;
        }
        if (!matched.hasMatchedOption("--hidden")) {
            hidden = quick ? 512 : 4096;
        }
        if (!matched.hasMatchedOption("--intermediate")) {
            intermediate = quick ? 1024 : 14336;
        }
        var s = validate();
        int n = repeats != null ? repeats : quick ? 2 : 10;
        if (n < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--repeats must be at least 1, got " + n);
        }
        try (CudaDevice d = Cuda.open(0)) {
            BenchMoeGpu.run(d, new MoeLayerBenchmark.Shape(s.tokens(), s.hidden(), s.intermediate(), s.experts(),
                    s.topK()), n, quick, options.json(), spec.commandLine().getOut());
        }
        spec.commandLine().getOut().flush();
    }

    private MoeBenchmark.Shape validate() {
        Object[][] sizes = {{"--tokens", tokens}, {"--hidden", hidden}, {"--intermediate", intermediate},
                {"--experts", experts}, {"--top-k", topK}};
        for (Object[] size : sizes) {
            if ((int) size[1] < 1) {
                throw new CommandLine.ParameterException(spec.commandLine(), size[0] + " must be at least 1, got " + size[1]);
            }
        }
        if (topK > experts) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--top-k (" + topK + ") must not exceed --experts (" + experts + ")");
        }
        if (seconds != null && !(seconds >= 0)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--seconds must be at least 0, got " + seconds);
        }
        return new MoeBenchmark.Shape(tokens, hidden, intermediate, experts, topK);
    }

    /** The strategies asked for; by default every one that applies to the shape, dense excepted (E times the work). */
    private List<MoeBenchmark.Strategy> chosen(MoeBenchmark.Shape shape) {
        var all = MoeBenchmark.strategies(shape);
        if (strategies == null) {
            return all.stream().filter(s -> !s.key().equals("dense")).toList();
        }
        List<MoeBenchmark.Strategy> out = new ArrayList<>();
        for (String name : strategies) {
            String key = name.trim();
            var match = all.stream().filter(s -> s.key().equals(key)).findFirst();
            if (match.isEmpty()) {
                boolean known = ALL.contains(key) && !key.isEmpty();
                throw new CommandLine.ParameterException(spec.commandLine(), known
                        ? "--strategies: " + key + " does not apply to " + experts + " experts, top-" + topK
                        : "--strategies: unknown strategy '" + key + "'; expected one of " + ALL);
            }
            out.add(match.get());
        }
        return out;
    }

    static Map<String, Object> report(Environment env, MachineLimits limits, boolean disturbed, MoeBenchmark.Shape shape,
                                      Timing dense, double denseFlops, List<MoeBenchmark.Result> results) {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("benchmark", "moe");
        root.put("environment", BenchMatMulCommand.environment(env));
        Map<String, Object> lim = new LinkedHashMap<>();
        lim.put("threads", limits.threads());
        lim.put("peak_gflops", limits.peakGflops());
        lim.put("disturbed", disturbed);
        root.put("limits", lim);
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("tokens", shape.tokens());
        s.put("hidden", shape.hidden());
        s.put("intermediate", shape.intermediate());
        s.put("experts", shape.experts());
        s.put("top_k", shape.topK());
        root.put("shape", s);
        Map<String, Object> d = timing(dense);
        d.put("gflop", denseFlops / 1e9);
        d.put("gflops", denseFlops / dense.bestSeconds() / 1e9);
        d.put("fraction_of_peak", denseFlops / dense.bestSeconds() / 1e9 / limits.peakGflops());
        root.put("dense_chain", d);
        List<Object> list = new ArrayList<>();
        for (var r : results) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("strategy", r.strategy().key());
            m.put("description", r.strategy().description());
            m.put("expert_rows", r.expertRows());
            m.put("gflop", r.expertFlops() / 1e9);
            m.put("layer", timing(r.layer()));
            m.put("expert_matmuls", timing(r.matmuls()));
            m.put("ratio", r.overhead());
            m.put("gflops", r.layerGflops());
            m.put("fraction_of_peak", r.layerGflops() / limits.peakGflops());
            m.put("dropped_fraction", r.droppedFraction());
            list.add(m);
        }
        root.put("strategies", list);
        return root;
    }

    private static Map<String, Object> timing(Timing t) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("best_s", t.bestSeconds());
        m.put("median_s", t.medianSeconds());
        m.put("iterations", t.iterations());
        return m;
    }
}
