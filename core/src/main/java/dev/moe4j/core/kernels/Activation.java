package dev.moe4j.core.kernels;

import dev.moe4j.core.BadInputException;

import java.util.Locale;

/** The elementwise nonlinearities of the FFNs moe4j runs, named as Hugging Face configs name them. */
public enum Activation {
    /** x·σ(x), also called swish. */
    SILU,
    /** GELU with the tanh approximation: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). */
    GELU_TANH,
    /** Exact GELU: x·Φ(x) = 0.5x(1 + erf(x/√2)). */
    GELU,
    /** max(x, 0). */
    RELU;

    /**
     * The activation a config's {@code hidden_act} (or {@code hidden_activation}) names: "silu"/"swish",
     * "gelu" (exact), "gelu_new"/"gelu_pytorch_tanh"/"gelu_fast" (tanh approximation), "relu".
     */
    public static Activation fromHuggingFace(String name) {
        return switch (name == null ? "" : name.toLowerCase(Locale.ROOT)) {
            case "silu", "swish" -> SILU;
            case "gelu" -> GELU;
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_TANH;
            case "relu" -> RELU;
            default -> throw new BadInputException("hidden_act '" + name + "' is not supported; expected one of "
                    + "silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu");
        };
    }
}
