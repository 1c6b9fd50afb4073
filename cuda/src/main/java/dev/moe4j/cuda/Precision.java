package dev.moe4j.cuda;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;

import java.util.Locale;

/**
 * How a GPU computes, chosen when a {@link CudaDevice} is opened: the trade of accuracy for speed and memory that
 * training tools offer as "bf16-mixed" against "32-true".
 * <ul>
 * <li>{@link #BF16}: matrices and activations in BF16, products on the tensor cores with F32 accumulation, F32
 * gradients, routers and vectors; flash attention where the head fits. About 1e-2 relative from float32.</li>
 * <li>{@link #F32}: everything F32, every product a true F32 one in cuBLAS, attention on the CUDA cores: the float32
 * standard the CPU meets (about 1e-4 relative), at twice the memory of the weights and a fraction of the speed.</li>
 * </ul>
 */
public enum Precision {
    BF16(DType.BF16), F32(DType.F32);

    private final DType activationType;

    Precision(DType activationType) {
        this.activationType = activationType;
    }

    /** The dtype of the device's activations and inference weights. */
    public DType activationType() {
        return activationType;
    }

    /** As a user writes it: "bf16" or "f32". */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** "bf16" or "f32" (any case) as given to {@code option}; anything else is a one-line error. */
    public static Precision parse(String option, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "bf16" -> BF16;
            case "f32" -> F32;
            default -> throw new BadInputException(option + ": expected bf16 or f32, got '" + value + "'");
        };
    }
}
