package dev.moe4j.model.config;

/**
 * The activation of the gated MLPs (dense layers, experts, shared experts), which all compute
 * {@code down(act(gate(x)) * up(x))}, except gpt-oss's clamped variant.
 *
 * @param alpha for {@link Function#CLAMPED_SWIGLU}: the gain in gate * sigmoid(alpha * gate); 1 otherwise
 * @param limit for {@link Function#CLAMPED_SWIGLU}: gate is clamped above at limit, up to [-limit, limit];
 *              infinite otherwise
 */
public record Activation(Function function, double alpha, double limit) {
    public Activation {
        if (function == Function.CLAMPED_SWIGLU && !(alpha > 0 && limit > 0)) {
            throw new IllegalArgumentException("clamped SwiGLU needs positive alpha and limit, got " + alpha
                    + " and " + limit);
        }
    }

    public static Activation of(Function function) {
        return new Activation(function, 1.0, Double.POSITIVE_INFINITY);
    }

    /** gpt-oss's expert activation: (clamp(up) + 1) * g * sigmoid(alpha * g) with g = min(gate, limit). */
    public static Activation clampedSwiglu(double alpha, double limit) {
        return new Activation(Function.CLAMPED_SWIGLU, alpha, limit);
    }

    public enum Function {
        /** x * sigmoid(x) (transformers' "silu" / "swish"). */
        SILU,
        /** The exact, erf-based GELU ("gelu"). */
        GELU,
        /** The tanh approximation of GELU ("gelu_pytorch_tanh", "gelu_new"). */
        GELU_TANH,
        RELU,
        CLAMPED_SWIGLU
    }
}
