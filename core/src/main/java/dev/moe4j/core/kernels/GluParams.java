package dev.moe4j.core.kernels;

/**
 * What a gated linear unit computes from a fused gate/up row ({@link SwiGLU}), and how the row is laid out.
 * {@link Gated} is out = act(gate)·up (SwiGLU with SiLU, GeGLU with GELU); {@link Clamped} is gpt-oss's variant,
 * out = (clamp(up, −limit, limit) + 1) · g·σ(alpha·g) with g = min(gate, limit).
 */
public sealed interface GluParams {
    /** Where gate and up sit in the fused row of 2I values. */
    enum Layout {
        /** Gate in the first I columns, up in the next I (stacked [E, 2I, H] expert weights, Mixtral, Qwen). */
        HALVES,
        /** Gate and up alternate: gate at even columns, up at odd ones (gpt-oss's gate_up_proj). */
        INTERLEAVED
    }

    Layout layout();

    /** out = act(gate) · up. */
    record Gated(Activation activation, Layout layout) implements GluParams {
    }

    /** gpt-oss: gate clamped above at limit, up clamped to [−limit, limit], out = (up + 1)·gate·σ(alpha·gate). */
    record Clamped(float alpha, float limit, Layout layout) implements GluParams {
    }

    /** SwiGLU over a [gate | up] row. */
    static GluParams swiglu() {
        return new Gated(Activation.SILU, Layout.HALVES);
    }

    /** act(gate)·up over a [gate | up] row (GeGLU with a GELU, ReGLU with ReLU). */
    static GluParams gated(Activation activation) {
        return new Gated(activation, Layout.HALVES);
    }

    /** gpt-oss's expert activation as transformers computes it: alpha 1.702, limit 7, interleaved gate/up. */
    static GluParams gptOss() {
        return new Clamped(1.702f, 7.0f, Layout.INTERLEAVED);
    }
}
