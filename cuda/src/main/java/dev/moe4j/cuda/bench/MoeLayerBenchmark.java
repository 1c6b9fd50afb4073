package dev.moe4j.cuda.bench;

import dev.moe4j.core.DType;
import dev.moe4j.cuda.Blas;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.moe.DeviceMoeLayer;
import dev.moe4j.moe.MoeConfig;

/**
 * Times the GPU MoE layer (forward alone, and forward + backward as training runs it) at one shape, with
 * weights and inputs made on the device, and reports TFLOP/s of the layer's matrix work: per token and choice,
 * 6·H·I for the SwiGLU expert (gate/up and down products), plus 2·H·E per token for the router; backward does
 * twice the forward's.
 */
public final class MoeLayerBenchmark {
    /** The layer's shape. */
    public record Shape(int tokens, int hidden, int intermediate, int experts, int topK) {
        /** Forward FLOPs of the experts' and router's products. */
        public double forwardFlops() {
            return 6.0 * tokens * topK * hidden * intermediate + 2.0 * tokens * hidden * experts;
        }

        /**
         * Bytes a forward pass must read at least: the active experts' weights (all of them once tokens × k ≥
         * experts), the router, and the activations in and out.
         */
        public double forwardBytes() {
            double active = Math.min(experts, (double) tokens * topK);
            return 2.0 * (active * 3.0 * hidden * intermediate + (double) experts * hidden + 2.0 * tokens * hidden);
        }

        @Override
        public String toString() {
            return tokens + " tokens, H " + hidden + ", I " + intermediate + ", E " + experts + ", top-" + topK + ", bf16";
        }
    }

    /** Median device milliseconds of one forward and of one forward + backward, with the grouping used. */
    public record Result(Shape shape, Blas.Grouping grouping, double forwardMillis, double trainingMillis) {
        public double forwardTflops() {
            return shape.forwardFlops() / (forwardMillis * 1e-3) / 1e12;
        }

        public double trainingTflops() {
            return 3 * shape.forwardFlops() / (trainingMillis * 1e-3) / 1e12;
        }

        /** Forward bytes over forward time: what a memory-bound (decode) pass reaches. */
        public double forwardBandwidth() {
            return shape.forwardBytes() / (forwardMillis * 1e-3);
        }
    }

    private MoeLayerBenchmark() {
    }

    /**
     * Times the Mixtral-style layer (softmax, top-k renormalised, dropless) at the shape, in one grouping.
     * {@code training} false times only the forward pass (inference, e.g. decode); the training figure is then NaN.
     */
    public static Result run(CudaDevice device, Shape s, Blas.Grouping grouping, boolean training, int warmups, int repeats) {
        MoeConfig config = MoeConfig.builder(s.hidden(), s.intermediate(), s.experts(), s.topK()).normalizeTopK(true).build();
        Blas.Grouping before = device.blas().grouping();
        device.blas().grouping(grouping);
        try (DeviceMoeLayer layer = DeviceMoeLayer.random(device, config, 7);
             DeviceTensor x = device.allocate(DType.BF16, s.tokens(), s.hidden());
             DeviceTensor dOut = device.allocate(DType.BF16, s.tokens(), s.hidden())) {
            DeviceOps.fillNormal(x, 11, 1);
            DeviceOps.fillNormal(dOut, 12, 1e-3);
            double forward = GpuLimits.medianMillis(device, warmups, repeats, () -> {
                try (DeviceMoeLayer.Pass p = layer.forward(x, false)) {
                    p.output().close();
                }
            });
            double both = Double.NaN;
            if (training) {
                both = GpuLimits.medianMillis(device, warmups, repeats, () -> {
                    try (DeviceMoeLayer.Pass p = layer.forward(x, true)) {
                        layer.backward(p, dOut).close();
                        p.output().close();
                    }
                });
            }
            return new Result(s, grouping, forward, both);
        } finally {
            device.blas().grouping(before);
        }
    }
}
