package dev.moe4j.cuda.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.kernels.TransformerKernels;

/**
 * Times the GPU attention kernels (forward, and backward) at one causal shape and prints TFLOP/s, counting
 * 4·T²/2·d per head forward (scores and values, causal half) and 2.5 times that backward. Run with
 * {@code java -cp moe4j.jar dev.moe4j.cuda.bench.AttentionBenchmark [tokens heads kvHeads headDim]}.
 */
public final class AttentionBenchmark {
    private AttentionBenchmark() {
    }

    public static void main(String[] args) {
        int tokens = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int heads = args.length > 1 ? Integer.parseInt(args[1]) : 32;
        int kvHeads = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        int headDim = args.length > 3 ? Integer.parseInt(args[3]) : 128;
        AttentionSpec spec = AttentionSpec.of(heads, kvHeads, headDim);
        try (CudaDevice d = Cuda.open(0);
             DeviceTensor q = d.allocate(DType.BF16, tokens, heads * headDim);
             DeviceTensor k = d.allocate(DType.BF16, tokens, kvHeads * headDim);
             DeviceTensor v = d.allocate(DType.BF16, tokens, kvHeads * headDim);
             DeviceTensor out = d.allocate(DType.BF16, tokens, heads * headDim);
             DeviceTensor dOut = d.allocate(DType.BF16, tokens, heads * headDim);
             DeviceTensor dq = d.allocate(DType.BF16, tokens, heads * headDim);
             DeviceTensor dk = d.allocate(DType.BF16, tokens, kvHeads * headDim);
             DeviceTensor dv = d.allocate(DType.BF16, tokens, kvHeads * headDim);
             DeviceTensor lse = d.allocate(DType.F32, tokens, heads)) {
            DeviceOps.fillNormal(q, 1, 1);
            DeviceOps.fillNormal(k, 2, 1);
            DeviceOps.fillNormal(v, 3, 1);
            DeviceOps.fillNormal(dOut, 4, 1);
            double forward = GpuLimits.medianMillis(d, 2, 5,
                    () -> TransformerKernels.attention(out, lse, q, k, v, 1, 0, spec, null));
            double backward = GpuLimits.medianMillis(d, 1, 3, () -> TransformerKernels.attentionBackward(dq, dk, dv,
                    null, false, dOut, q, k, v, out, lse, 1, 0, spec, null));
            double flops = 4.0 * tokens * tokens / 2 * headDim * heads;
            System.out.printf("moe4j attention (F32 CUDA cores), %d tokens, %d heads / %d kv, d %d, causal on %s:%n",
                    tokens, heads, kvHeads, headDim, d.name());
            System.out.printf("  forward  %8.3f ms  %6.1f TFLOP/s%n", forward, flops / forward / 1e9);
            System.out.printf("  backward %8.3f ms  %6.1f TFLOP/s%n", backward, 2.5 * flops / backward / 1e9);
        }
    }
}
