package dev.moe4j.cuda.bench;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.router.TopKRouter;

/**
 * Times the MoE layer on a GPU (forward alone, and forward + backward as training runs it) at one shape: moe4j's one
 * {@link MoeLayer} with its weights and inputs made on the device, so its numeric steps run on the device's
 * backend (routing decided on the host from the device's router logits). Reports TFLOP/s of the layer's matrix
 * work: per token and choice, 6·H·I for the SwiGLU expert (gate/up and down products), plus 2·H·E per token for the
 * router; backward does twice the forward's.
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

    /** Median milliseconds of one forward and of one forward + backward. */
    public record Result(Shape shape, double forwardMillis, double trainingMillis) {
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
     * Times the Mixtral-style layer (softmax, top-k renormalised, dropless) at the shape: BF16 weights N(0, 1/H) and
     * N(0, 1/I) made on the device, F32 gradients. {@code training} false times only the forward pass (inference,
     * e.g. decode); the training figure is then NaN.
     */
    public static Result run(CudaDevice device, Shape s, boolean training, int warmups, int repeats) {
        MoeConfig config = MoeConfig.builder(s.hidden(), s.intermediate(), s.experts(), s.topK()).normalizeTopK(true).build();
        int e = s.experts(), h = s.hidden(), i = s.intermediate();
        // The weights live as long as the layer; the layer's passes allocate in scopes of their own.
        Tensor router = device.allocate(DType.BF16, e, h), gateUp = device.allocate(DType.BF16, e, 2 * i, h);
        Tensor down = device.allocate(DType.BF16, e, h, i);
        Tensor x = device.allocate(DType.BF16, s.tokens(), h), dOut = device.allocate(DType.BF16, s.tokens(), h);
        try {
            DeviceOps.fillNormal(router, 7, 1 / Math.sqrt(h));
            DeviceOps.fillNormal(gateUp, 8, 1 / Math.sqrt(h));
            DeviceOps.fillNormal(down, 9, 1 / Math.sqrt(i));
            DeviceOps.fillNormal(x, 11, 1);
            DeviceOps.fillNormal(dOut, 12, 1e-3);
            MoeLayer layer = MoeLayer.of(config, new TopKRouter(config, router, null, null, null),
                    new StackedExpertWeights("experts.", true, gateUp, down, null, null), null, null);
            double forward = GpuLimits.medianMillis(device, warmups, repeats, () -> {
                try (var scope = MemoryScope.open()) {
                    layer.forward(x, Mode.INFERENCE);
                }
            });
            double both = Double.NaN;
            if (training) {
                both = GpuLimits.medianMillis(device, warmups, repeats, () -> {
                    try (var scope = MemoryScope.open()) {
                        MoeResult r = layer.forward(x, Mode.TRAINING);
                        layer.backward(r.context(), dOut);
                    }
                });
            }
            for (Parameter p : layer.parameters()) {
                if (p.hasGrad()) {
                    device.free(p.grad());
                }
            }
            return new Result(s, forward, both);
        } finally {
            for (Tensor t : new Tensor[] {router, gateUp, down, x, dOut}) {
                device.free(t);
            }
        }
    }
}
