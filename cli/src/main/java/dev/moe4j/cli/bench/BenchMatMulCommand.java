package dev.moe4j.cli.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.perf.Environment;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.core.perf.MatMulBenchmark;
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
 * {@code moe4j bench matmul}: the matmul kernel in its two regimes, as fractions of this machine's limits.
 * Decode (one token: bound by reading the weights) is compared with the memory bandwidth, prefill (many tokens:
 * bound by FMAs) with the peak FMA rate.
 */
@Command(name = "matmul",
        mixinStandardHelpOptions = true,
        description = {"Measures y = x·Wᵀ with W [size, size]: decode (x has 1 row; GB/s of weights read, against the "
                + "memory bandwidth) and prefill (x has --tokens rows; GFLOP/s, against the peak FMA rate).",
                "Both limits are measured first, in the same run, with the same threads."})
public final class BenchMatMulCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    BenchOptions options;

    @Option(names = "--size", paramLabel = "N", defaultValue = "4096",
            description = "W is [N, N] and rows of x have N elements (default: ${DEFAULT-VALUE}).")
    int size;

    @Option(names = "--tokens", paramLabel = "T", defaultValue = "512",
            description = "Rows of x in the prefill measurement (default: ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--dtypes", paramLabel = "TYPE", split = ",", defaultValue = "F32,BF16", converter = WeightType.class,
            description = "Weight types to measure, of F32, BF16, F16 and the block-quantised Q8_0, Q4_0, Q4_K, "
                    + "Q5_K, Q6_K, MXFP4, and F8_E4M3_B32 (block-scaled FP8 as moe4j holds it; forward only; default: "
                    + "${DEFAULT-VALUE}).")
    List<DType> dtypes;

    @Option(names = "--gradients",
            description = "Also measure the two gradient products of training at the prefill shape: dx = dy·W and "
                    + "dW = dyᵀ·x (GFLOP/s, against the peak FMA rate).")
    boolean gradients;

    @Option(names = "--seconds", paramLabel = "S",
            description = "Minimum timed seconds per measurement (default: 2, or 0.05 with --quick).")
    Double seconds;

    @Override
    public void run() {
        validate();
        options.applyThreads();
        double minSeconds = seconds != null ? seconds : options.quick() ? 0.05 : 2.0;
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        if (!options.json()) {
            out.println("moe4j bench matmul: " + env.describe());
            out.flush();
        }
        // The limits are measured before and after the kernels and the better of each is used: other work on
        // the machine only lowers a measurement, and a kernel is compared with the machine at its best.
        MachineLimits before = options.measureLimits();
        if (!options.json()) {
            out.printf("machine limits, measured now with %d threads (again after the kernels; the better is used)%n",
                    before.threads());
            out.printf("  peak FMA rate     %8.1f GFLOP/s  (F32 FMAs in registers)%n", before.peakGflops());
            out.printf("  memory bandwidth  %8.1f GB/s     (streaming read)%n", before.bandwidthGBs());
            out.printf("decode: x[1, %d] · W[%d, %d]ᵀ%s%n", size, size, size, options.quick() ? ""
                    : ", weights rotated over " + (MatMulBenchmark.DECODE_ROTATION_BYTES >> 20) + " MiB so that each call reads memory");
            out.flush();
        }
        List<MatMulBenchmark.Result> decode = new ArrayList<>();
        for (DType type : dtypes) {
            var r = MatMulBenchmark.decode(type, size, size, minSeconds, options.quick() ? 0 : MatMulBenchmark.DECODE_ROTATION_BYTES);
            decode.add(r);
            if (!options.json()) {
                out.printf("  %-11s %9.3f ms  %8.1f GB/s     %5.1f%% of bandwidth  (median %.3f ms)%n", type,
                        r.timing().bestSeconds() * 1e3, r.weightGBs(), 100 * r.weightGBs() / before.bandwidthGBs(),
                        r.timing().medianSeconds() * 1e3);
                out.flush();
            }
        }
        if (!options.json()) {
            out.printf("prefill: x[%d, %d] · W[%d, %d]ᵀ%n", tokens, size, size, size);
        }
        List<MatMulBenchmark.Result> prefill = new ArrayList<>();
        for (DType type : dtypes) {
            var r = MatMulBenchmark.prefill(type, tokens, size, size, minSeconds);
            prefill.add(r);
            if (!options.json()) {
                out.printf("  %-11s %9.3f ms  %8.1f GFLOP/s  %5.1f%% of peak       (median %.3f ms)%n", type,
                        r.timing().bestSeconds() * 1e3, r.gflops(), 100 * r.gflops() / before.peakGflops(),
                        r.timing().medianSeconds() * 1e3);
                out.flush();
            }
        }
        List<MatMulBenchmark.Result> inputGradients = new ArrayList<>();
        MatMulBenchmark.Result weightGradient = null;
        if (gradients) {
            if (!options.json()) {
                out.printf("gradients: dx = dy·W and dW = dyᵀ·x with dy[%d, %d], x[%d, %d]%n", tokens, size, tokens, size);
            }
            for (DType type : dtypes) {
                var r = MatMulBenchmark.inputGradient(type, tokens, size, size, minSeconds);
                inputGradients.add(r);
                printFlops(out, "dx " + type, r, before);
            }
            weightGradient = MatMulBenchmark.weightGradient(tokens, size, size, minSeconds);
            printFlops(out, "dW F32", weightGradient, before);
        }
        MachineLimits after = options.measureLimits();
        MachineLimits limits = before.best(after);
        boolean disturbed = before.differsFrom(after, 0.15);
        if (!options.json()) {
            out.printf("machine limits again: %.1f GFLOP/s, %.1f GB/s%s%n", after.peakGflops(), after.bandwidthGBs(),
                    disturbed ? "  (more than 15% apart: the machine was busy; rerun when it is quiet)" : "");
            out.println("ratios to the better limits:");
            for (var r : decode) {
                out.printf("  decode  %-11s %5.1f%% of bandwidth%n", r.weightType(), 100 * r.weightGBs() / limits.bandwidthGBs());
            }
            for (var r : prefill) {
                out.printf("  prefill %-11s %5.1f%% of peak%n", r.weightType(), 100 * r.gflops() / limits.peakGflops());
            }
            for (var r : inputGradients) {
                out.printf("  dx      %-11s %5.1f%% of peak%n", r.weightType(), 100 * r.gflops() / limits.peakGflops());
            }
            if (weightGradient != null) {
                out.printf("  dW      %-11s %5.1f%% of peak%n", "F32", 100 * weightGradient.gflops() / limits.peakGflops());
            }
            out.println("figures are the best call (median beside it); the limits are the best of many short units too");
        } else {
            out.println(Json.write(report(env, before, after, decode, prefill, inputGradients, weightGradient)));
        }
        out.flush();
    }

    private void validate() {
        if (size < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--size must be at least 1, got " + size);
        }
        if (tokens < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--tokens must be at least 1, got " + tokens);
        }
        if (gradients && dtypes.stream().anyMatch(DType::isBlockQuantized)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--gradients measures F32, BF16 and F16"
                    + " weights; block-quantised weights are measured forward only");
        }
        if (seconds != null && !(seconds >= 0)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--seconds must be at least 0, got " + seconds);
        }
    }

    /** Parses a weight type: one the kernels read, in any case. */
    static final class WeightType implements CommandLine.ITypeConverter<DType> {
        @Override
        public DType convert(String value) {
            for (DType t : DType.values()) {
                if ((t.isKernelFloat() || t.isBlockQuantized()) && t.name().equalsIgnoreCase(value.trim())) {
                    return t;
                }
            }
            throw new CommandLine.TypeConversionException("expected F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K,"
                    + " MXFP4 or F8_E4M3_B32, got '" + value + "'");
        }
    }

    static Map<String, Object> report(Environment env, MachineLimits before, MachineLimits after,
                                      List<MatMulBenchmark.Result> decode, List<MatMulBenchmark.Result> prefill,
                                      List<MatMulBenchmark.Result> inputGradients, MatMulBenchmark.Result weightGradient) {
        MachineLimits limits = before.best(after);
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("benchmark", "matmul");
        root.put("environment", environment(env));
        Map<String, Object> lim = new LinkedHashMap<>();
        lim.put("threads", limits.threads());
        lim.put("peak_gflops", limits.peakGflops());
        lim.put("bandwidth_gbs", limits.bandwidthGBs());
        lim.put("before", List.of(before.peakGflops(), before.bandwidthGBs()));
        lim.put("after", List.of(after.peakGflops(), after.bandwidthGBs()));
        lim.put("disturbed", before.differsFrom(after, 0.15));
        root.put("limits", lim);
        List<Object> d = new ArrayList<>();
        for (var r : decode) {
            Map<String, Object> m = result(r);
            m.put("weight_gbs", r.weightGBs());
            m.put("fraction_of_bandwidth", r.weightGBs() / limits.bandwidthGBs());
            d.add(m);
        }
        root.put("decode", d);
        List<Object> p = new ArrayList<>();
        for (var r : prefill) {
            Map<String, Object> m = result(r);
            m.put("gflops", r.gflops());
            m.put("fraction_of_peak", r.gflops() / limits.peakGflops());
            p.add(m);
        }
        root.put("prefill", p);
        if (weightGradient != null) {
            List<Object> g = new ArrayList<>();
            for (var r : inputGradients) {
                g.add(flops(r, "dx", limits));
            }
            g.add(flops(weightGradient, "dW", limits));
            root.put("gradients", g);
        }
        return root;
    }

    static Map<String, Object> environment(Environment env) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("cpu", env.cpu());
        m.put("processors", env.processors());
        m.put("threads", env.threads());
        m.put("vector_bits", env.vectorBits());
        m.put("java", env.java());
        m.put("load_average", env.loadAverage());
        return m;
    }

    private static Map<String, Object> flops(MatMulBenchmark.Result r, String product, MachineLimits limits) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("product", product);
        m.putAll(result(r));
        m.put("gflops", r.gflops());
        m.put("fraction_of_peak", r.gflops() / limits.peakGflops());
        return m;
    }

    private void printFlops(PrintWriter out, String label, MatMulBenchmark.Result r, MachineLimits limits) {
        if (!options.json()) {
            out.printf("  %-8s %9.3f ms  %8.1f GFLOP/s  %5.1f%% of peak       (median %.3f ms)%n", label,
                    r.timing().bestSeconds() * 1e3, r.gflops(), 100 * r.gflops() / limits.peakGflops(),
                    r.timing().medianSeconds() * 1e3);
            out.flush();
        }
    }

    private static Map<String, Object> result(MatMulBenchmark.Result r) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("dtype", r.weightType().name());
        m.put("n", r.n());
        m.put("k", r.k());
        m.put("m", r.m());
        m.put("best_ms", r.timing().bestSeconds() * 1e3);
        m.put("median_ms", r.timing().medianSeconds() * 1e3);
        m.put("iterations", r.timing().iterations());
        return m;
    }
}
