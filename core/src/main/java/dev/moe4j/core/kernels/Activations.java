package dev.moe4j.core.kernels;

import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Elementwise activations ({@link Activation}) and their derivatives, vectorised. The formulas are PyTorch's:
 * SiLU as x / (1 + e^−x), GELU-tanh with the 0.044715 cubic, exact GELU through erfc so that its tail keeps its
 * relative precision (erfc by a Chebyshev fit with relative error below 1.2e-7, Numerical Recipes' erfcc).
 */
public final class Activations {
    private static final int GRAIN = 1 << 15;
    private static final float SQRT_2_OVER_PI = 0.7978845608028654f;
    private static final float GELU_CUBIC = 0.044715f;
    private static final float INV_SQRT_2 = 0.7071067811865476f;
    private static final float INV_SQRT_2PI = 0.3989422804014327f;
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);

    private Activations() {
    }

    /** out = f(x), elementwise; out may be x. */
    public static void forward(Activation kind, Tensor out, Tensor x) {
        Checks.requireF32("Activations.forward", out, x);
        Checks.requireSameSize("Activations.forward", out, x);
        MemorySegment os = out.segment(), xs = x.segment();
        Chunks.forElements(x.size(), GRAIN, (from, to) -> {
            long i = from;
            for (long bound = from + F.loopBound(to - from); i < bound; i += LANES) {
                apply(kind, f32(xs, i)).intoMemorySegment(os, i * 4, LE);
            }
            for (; i < to; i++) {
                setF32(os, i, apply(kind, getF32(xs, i)));
            }
        });
    }

    /** dx = dy ⊙ f'(x), elementwise, from the forward input x; dx may be dy. */
    public static void backward(Activation kind, Tensor dx, Tensor dy, Tensor x) {
        Checks.requireF32("Activations.backward", dx, dy, x);
        Checks.requireSameSize("Activations.backward", dx, x);
        Checks.requireSameSize("Activations.backward", dy, x);
        MemorySegment dxs = dx.segment(), dys = dy.segment(), xs = x.segment();
        Chunks.forElements(x.size(), GRAIN, (from, to) -> {
            long i = from;
            for (long bound = from + F.loopBound(to - from); i < bound; i += LANES) {
                derivative(kind, f32(xs, i)).mul(f32(dys, i)).intoMemorySegment(dxs, i * 4, LE);
            }
            for (; i < to; i++) {
                setF32(dxs, i, derivative(kind, getF32(xs, i)) * getF32(dys, i));
            }
        });
    }

    // ---- vector forms, shared with SwiGLU ----

    static FloatVector apply(Activation kind, FloatVector x) {
        return switch (kind) {
            case SILU -> x.div(VectorExp.exp(x.neg()).add(1f));
            case GELU_TANH -> geluTanh(x);
            case GELU -> x.mul(normalCdf(x));
            case RELU -> x.max(0f);
        };
    }

    static FloatVector derivative(Activation kind, FloatVector x) {
        return switch (kind) {
            case SILU -> {
                var s = sigmoid(x);
                yield s.mul(x.mul(s.neg().add(1f)).add(1f));
            }
            case GELU_TANH -> geluTanhDerivative(x);
            case GELU -> normalCdf(x).add(x.mul(VectorExp.exp(x.mul(x).mul(-0.5f))).mul(INV_SQRT_2PI));
            case RELU -> FloatVector.zero(F).blend(1f, x.compare(VectorOperators.GT, 0f));
        };
    }

    static FloatVector sigmoid(FloatVector x) {
        return ONE.div(VectorExp.exp(x.neg()).add(1f));
    }

    private static FloatVector geluTanh(FloatVector x) {
        var t = VectorExp.tanh(x.mul(x).mul(GELU_CUBIC).mul(x).add(x).mul(SQRT_2_OVER_PI));
        return x.mul(0.5f).mul(t.add(1f));
    }

    private static FloatVector geluTanhDerivative(FloatVector x) {
        var x2 = x.mul(x);
        var t = VectorExp.tanh(x2.mul(GELU_CUBIC).mul(x).add(x).mul(SQRT_2_OVER_PI));
        var inner = x2.mul(3 * GELU_CUBIC).add(1f).mul(SQRT_2_OVER_PI);
        var sech2 = t.mul(t).neg().add(1f);
        return t.add(1f).mul(0.5f).add(x.mul(0.5f).mul(sech2).mul(inner));
    }

    /** Φ(x) = erfc(−x/√2)/2 with erfc(u) = r for u ≥ 0 and 2 − r below, r from the Chebyshev fit. */
    private static FloatVector normalCdf(FloatVector x) {
        var u = x.mul(-INV_SQRT_2);
        var t = ONE.div(u.abs().mul(0.5f).add(1f));
        var p = t.mul(0.17087277f).add(-0.82215223f);
        p = p.mul(t).add(1.48851587f);
        p = p.mul(t).add(-1.13520398f);
        p = p.mul(t).add(0.27886807f);
        p = p.mul(t).add(-0.18628806f);
        p = p.mul(t).add(0.09678418f);
        p = p.mul(t).add(0.37409196f);
        p = p.mul(t).add(1.00002368f);
        p = p.mul(t).add(-1.26551223f);
        var halfR = t.mul(VectorExp.exp(p.sub(u.mul(u)))).mul(0.5f);
        // x ≤ 0 ⇔ u ≥ 0: Φ = r/2; otherwise Φ = 1 − r/2
        return halfR.blend(halfR.neg().add(1f), x.compare(VectorOperators.GT, 0f));
    }

    // ---- scalar forms, for loop tails (same formulas, computed in double) ----

    static float apply(Activation kind, float xf) {
        double x = xf;
        return (float) switch (kind) {
            case SILU -> x / (1 + Math.exp(-x));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)));
            case GELU -> x * normalCdf(x);
            case RELU -> Math.max(x, 0);
        };
    }

    static float derivative(Activation kind, float xf) {
        double x = xf;
        return (float) switch (kind) {
            case SILU -> {
                double s = 1 / (1 + Math.exp(-x));
                yield s * (1 + x * (1 - s));
            }
            case GELU_TANH -> {
                double t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
                yield 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
            }
            case GELU -> normalCdf(x) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI;
            case RELU -> x > 0 ? 1 : 0;
        };
    }

    static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    private static double normalCdf(double x) {
        double u = -x * INV_SQRT_2;
        double t = 1 / (1 + 0.5 * Math.abs(u));
        double p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
        double halfR = 0.5 * t * Math.exp(p - u * u);
        return x > 0 ? 1 - halfR : halfR;
    }
}
