package dev.moe4j.model.transformer;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.MemoryScope;

/**
 * The weights of another source copied to a device, so that the same {@link Transformer} code runs there: matrices
 * in the device's activation dtype for inference (a GPU's BF16; an F32 checkpoint is converted as it loads) or F32
 * for training; vectors (norm weights, biases, sinks) and the routers' weights F32. Routing state that the host reads and moves (selection
 * biases, expert-choice thresholds) stays in host memory.
 */
final class PlacedWeights implements WeightSource {
    private final WeightSource source;
    private final Backend backend;
    private final boolean trainable;

    /** @param trainable give trainable F32 {@link Parameter}s (training) rather than constants (inference) */
    PlacedWeights(WeightSource source, Backend backend, boolean trainable) {
        this.source = source;
        this.backend = backend;
        this.trainable = trainable;
    }

    @Override
    public Var weight(String name, int... shape) {
        Var v = source.weight(name, shape);
        if (staysOnHost(name)) {
            return v;
        }
        Tensor host = v.value();
        DType dtype = dtype(name, host.rank(), backend, trainable);
        Tensor placed = MemoryScope.persistent(() -> backend.upload(host, dtype));
        return trainable ? new Parameter(name, placed) : Var.constant(placed);
    }

    /** The dtype weight {@code name} of this rank takes on the device. */
    static DType dtype(String name, int rank, Backend backend, boolean trainable) {
        return trainable || rank < 2 || name.endsWith("bias") || routes(name) ? DType.F32 : backend.activationType();
    }

    /**
     * The weights that decide routing (router, its noise, the shared expert's gate): small, and kept in F32 so that
     * a token's experts are those the F32 model picks unless their scores nearly tie.
     */
    static boolean routes(String name) {
        return name.endsWith("router.weight") || name.endsWith("router.noise_weight") || name.endsWith("router.mu")
                || name.endsWith("shared_expert_gate.weight");
    }

    /** The router's buffers: routing decides on the host, and the bias balancer moves them there. */
    static boolean staysOnHost(String name) {
        return name.endsWith("router.selection_bias") || name.endsWith("router.expert_thresholds");
    }

    @Override
    public ExpertStorage expertStorage() {
        return source.expertStorage();
    }
}
