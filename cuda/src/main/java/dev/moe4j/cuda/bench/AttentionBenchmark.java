package dev.moe4j.cuda.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.CudaBackend;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;

/**
 * Times the GPU attention at one causal shape and prints TFLOP/s, counting 4·T²/2·d per head forward (scores and
 * values, causal half) and 2.5 times that backward: the tensor-core forward and backward (flash.cu) and the CUDA-core
 * forward and backward (attention.cu). Run with
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
        try (CudaDevice d = Cuda.open(0); var scope = MemoryScope.open()) {
            CudaBackend b = d.backend();
            Tensor q = d.allocate(DType.BF16, tokens, heads * headDim);
            Tensor k = d.allocate(DType.BF16, tokens, kvHeads * headDim);
            Tensor v = d.allocate(DType.BF16, tokens, kvHeads * headDim);
            Tensor out = d.allocate(DType.BF16, tokens, heads * headDim);
            Tensor dOut = d.zeros(DType.F32, tokens, heads * headDim);
            Tensor dq = d.zeros(DType.F32, tokens, heads * headDim);
            Tensor dk = d.zeros(DType.F32, tokens, kvHeads * headDim);
            Tensor dv = d.zeros(DType.F32, tokens, kvHeads * headDim);
            Tensor lse = d.allocate(DType.F32, tokens, heads);
            DeviceOps.fillNormal(q, 1, 1);
            DeviceOps.fillNormal(k, 2, 1);
            DeviceOps.fillNormal(v, 3, 1);
            b.fill(dOut, 1e-3f);
            double flops = 4.0 * tokens * tokens / 2 * headDim * heads;
            System.out.printf("moe4j attention, %d tokens, %d heads / %d kv, d %d, causal, bf16 on %s:%n", tokens, heads,
                    kvHeads, headDim, d.productName());
            if (CudaBackend.flashSupports(spec)) {
                double flash = GpuLimits.medianMillis(d, 3, 20, () -> b.attend(out, lse, q, k, v, 1, 0, spec, null, true));
                System.out.printf("  forward, tensor cores (flash) %8.3f ms  %6.1f TFLOP/s%n", flash, flops / flash / 1e9);
            }
            double tiled = GpuLimits.medianMillis(d, 2, 5, () -> b.attend(out, lse, q, k, v, 1, 0, spec, null, false));
            System.out.printf("  forward, CUDA cores           %8.3f ms  %6.1f TFLOP/s%n", tiled, flops / tiled / 1e9);
            if (CudaBackend.flashSupports(spec)) {
                double flashBackward = GpuLimits.medianMillis(d, 2, 10, () -> b.attendBackward(lse, dq, dk, dv, null,
                        dOut, q, k, v, out, 1, spec, null, true));
                System.out.printf("  backward, tensor cores (flash) %7.3f ms  %6.1f TFLOP/s%n", flashBackward,
                        2.5 * flops / flashBackward / 1e9);
            }
            double backward = GpuLimits.medianMillis(d, 1, 3, () -> b.attendBackward(lse, dq, dk, dv, null, dOut, q,
                    k, v, out, 1, spec, null, false));
            System.out.printf("  backward, CUDA cores          %8.3f ms  %6.1f TFLOP/s%n", backward,
                    2.5 * flops / backward / 1e9);
        }
    }
}
