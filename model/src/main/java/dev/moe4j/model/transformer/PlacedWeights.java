package dev.moe4j.model.transformer;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.MoeConfig;

import java.util.Optional;

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

    /**
     * Experts a checkpoint holds one tensor per expert and projection are stacked as they are placed, gate rows then
     * up rows per expert ([E, 2I, H], [E, H, I]): a decoding step then reads each chosen expert's gate and up in one
     * pass (the device's small-batch path needs them fused). Only for inference: training keeps the checkpoint's
     * parameters, whose gradients go back by name.
     */
    private final boolean stackExperts;

    /** @param trainable give trainable F32 {@link Parameter}s (training) rather than constants (inference) */
    PlacedWeights(WeightSource source, Backend backend, boolean trainable, Optional<MoeConfig> moe) {
        this.source = source;
        this.backend = backend;
        this.trainable = trainable;
        this.stackExperts = !trainable && !backend.device().isHost()
                && source.expertStorage() == ExpertStorage.SEPARATE
                && moe.map(m -> m.ffn().gated() && !m.expertBias()).orElse(false);
    }

    @Override
    public Var weight(String name, int... shape) {
        if (stackExperts && shape.length == 3 && (name.endsWith("gate_up_proj") || name.endsWith("down_proj"))) {
            return Var.constant(stacked(name, shape));
        }
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
     * The weights that decide routing (router, its noise, an expert-choice predictor, the shared expert's gate): small, and kept in F32 so that
     * a token's experts are those the F32 model picks unless their scores nearly tie.
     */
    static boolean routes(String name) {
        return name.endsWith("router.weight") || name.endsWith("router.noise_weight") || name.endsWith("router.mu")
                || name.endsWith("shared_expert_gate.weight") || name.contains("router.predictor.");
    }

    /** The router's buffers: routing decides on the host, and the bias balancer moves them there. */
    static boolean staysOnHost(String name) {
        return name.endsWith("router.selection_bias") || name.endsWith("router.expert_thresholds");
    }

    @Override
    public ExpertStorage expertStorage() {
        return stackExperts ? ExpertStorage.STACKED : source.expertStorage();
    }

    /**
     * The stacked tensor {@code name} ("...experts.gate_up_proj" [E, 2I, H] or "...down_proj" [E, H, I]) assembled
     * on the host from the source's per-expert tensors (the shared expert's carry no index), then placed.
     */
    private Tensor stacked(String name, int[] shape) {
        boolean gateUp = name.endsWith("gate_up_proj");
        String base = name.substring(0, name.length() - (gateUp ? "gate_up_proj" : "down_proj").length());
        boolean shared = base.endsWith("shared_experts.");
        DType dtype = backend.activationType();
        Tensor host = Tensor.zeros(dtype, shape);
        int rows = shape[1], cols = shape[2];
        for (int e = 0; e < shape[0]; e++) {
            String p = shared ? base : base + e + ".";
            Tensor slot = host.select(e);
            if (gateUp) {
                slot.slice(0, rows / 2).copyFrom(source.weight(p + "gate_proj.weight", rows / 2, cols).value());
                slot.slice(rows / 2, rows).copyFrom(source.weight(p + "up_proj.weight", rows / 2, cols).value());
            } else {
                slot.copyFrom(source.weight(p + "down_proj.weight", rows, cols).value());
            }
        }
        return MemoryScope.persistent(() -> backend.upload(host, dtype));
    }
}
