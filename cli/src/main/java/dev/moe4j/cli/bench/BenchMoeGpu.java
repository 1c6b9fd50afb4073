package dev.moe4j.cli.bench;

import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.bench.GpuLimits;
import dev.moe4j.cuda.bench.MoeLayerBenchmark;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The GPU half of {@code moe4j bench moe}: limits first, then moe4j's MoE layer on the GPU (forward, and forward +
 * backward), then one decode step.
 */
final class BenchMoeGpu {
    /** Qwen3-30B-A3B's MoE layer: H 2048, 128 experts of I 768, top-8; one token is what decoding does. */
    static final MoeLayerBenchmark.Shape DECODE = new MoeLayerBenchmark.Shape(1, 2048, 768, 128, 8);

    private BenchMoeGpu() {
    }

    static void run(CudaDevice device, MoeLayerBenchmark.Shape shape, int repeats, boolean quick, boolean json,
                    PrintWriter out) {
        if (!json) {
            out.println("moe4j bench moe --device cuda: " + device.describe());
            out.println("cuBLAS: " + device.blas().describe());
            out.flush();
        }
        GpuLimits limits = GpuLimits.measure(device, quick);
        if (!json) {
            out.printf("limits, measured now: bf16 matmul %d³ %.1f TFLOP/s; device copy %.0f GB/s (read + write)%n",
                    limits.matmulSize(), limits.matmulTflops(), limits.bandwidthBytesPerSecond() / 1e9);
            out.println("layer: " + shape + " (softmax top-k renormalised, dropless, SwiGLU; weights and inputs random)");
            out.printf("%11s %9s %8s %13s %9s %8s%n", "forward ms", "TFLOP/s", "of peak", "fwd+bwd ms", "TFLOP/s",
                    "of peak");
            out.flush();
        }
        var results = new ArrayList<MoeLayerBenchmark.Result>();
        MoeLayerBenchmark.Result r = MoeLayerBenchmark.run(device, shape, true, quick ? 1 : 3, repeats);
        results.add(r);
        if (!json) {
            out.printf("%11.3f %9.1f %7.1f%% %13.3f %9.1f %7.1f%%%n", r.forwardMillis(), r.forwardTflops(),
                    100 * r.forwardTflops() / limits.matmulTflops(), r.trainingMillis(), r.trainingTflops(),
                    100 * r.trainingTflops() / limits.matmulTflops());
            out.flush();
        }
        // Decoding takes the one-pass path for a few routed rows (no permutation, no grouped product). A step is
        // short enough that the host's launch path shows: warm the JIT up on it first, as a server would be.
        var decode = List.of(MoeLayerBenchmark.run(device, DECODE, false, quick ? 10 : 3000, quick ? 5 : 300));
        if (!json) {
            var d = decode.getFirst();
            out.println("decode step: " + DECODE + " (Qwen3-30B-A3B MoE layer)");
            out.printf("  %.1f µs per layer; %.0f GB/s of the active experts' weights, router and activations "
                            + "= %.1f%% of the copy bandwidth%n", d.forwardMillis() * 1e3, d.forwardBandwidth() / 1e9,
                    100 * d.forwardBandwidth() / limits.bandwidthBytesPerSecond());
            return;
        }
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("device", device.describe());
        report.put("matmul_tflops", limits.matmulTflops());
        report.put("copy_bandwidth_gbs", limits.bandwidthBytesPerSecond() / 1e9);
        report.put("shape", shape.toString());
        report.put("layer", rows(results, limits));
        report.put("decode_shape", DECODE.toString());
        report.put("decode", rows(decode, limits));
        out.println(Json.write(report));
    }

    private static List<Map<String, Object>> rows(List<MoeLayerBenchmark.Result> results, GpuLimits limits) {
        var rows = new ArrayList<Map<String, Object>>();
        for (var r : results) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("forward_ms", r.forwardMillis());
            row.put("forward_tflops", r.forwardTflops());
            row.put("forward_of_peak", r.forwardTflops() / limits.matmulTflops());
            row.put("forward_gbs", r.forwardBandwidth() / 1e9);
            row.put("training_ms", r.trainingMillis());
            row.put("training_tflops", r.trainingTflops());
            row.put("training_of_peak", r.trainingTflops() / limits.matmulTflops());
            rows.add(row);
        }
        return rows;
    }
}
