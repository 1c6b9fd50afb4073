package dev.moe4j.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

import static dev.moe4j.core.kernels.Widening.F;

/**
 * exp and tanh over vectors from lanewise adds, multiplies and fused multiply-adds only, so that every lane gets the
 * same float whether the JIT has compiled the caller or not. {@code lanewise(EXP)} calls a vector math library once
 * compiled and {@code Math.exp} lane by lane before, and the two round differently: a run's result then depended
 * on when the JIT got to it.
 *
 * <p>exp(x) = 2^k · p(r) with k = round(x / ln 2), r = x − k·ln 2 (two-part ln 2) in [−ln2/2, ln2/2] and p the
 * degree-7 Taylor polynomial (relative error below 1e-8 on that interval, so within 1 ulp of float). Results
 * below 2^-126 flush to zero; above 88.72 they are +∞.
 */
final class VectorExp {
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.42860682030941723212e-6f;
    /** Adding and subtracting 1.5·2^23 rounds a float of magnitude below 2^22 to the nearest integer. */
    private static final float ROUND = 12582912f;
    private static final float MAX_INPUT = 88.72283f;
    private static final float MIN_INPUT = -87.33654f;

    private VectorExp() {
    }

    static FloatVector exp(FloatVector x) {
        var clamped = x.max(MIN_INPUT).min(MAX_INPUT);
        var k = clamped.mul(LOG2E).add(ROUND).sub(ROUND);
        var r = k.neg().fma(FloatVector.broadcast(F, LN2_HI), clamped);
        r = k.neg().fma(FloatVector.broadcast(F, LN2_LO), r);
        var p = FloatVector.broadcast(F, 1f / 5040);
        p = p.fma(r, FloatVector.broadcast(F, 1f / 720));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 120));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 24));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 6));
        p = p.fma(r, FloatVector.broadcast(F, 0.5f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        // 2^k as two floats 2^(k/2) and 2^(k − k/2) (each a biased exponent in bits 23..30), since k reaches 128.
        var ki = (IntVector) k.convert(VectorOperators.F2I, 0);
        var half = ki.lanewise(VectorOperators.ASHR, 1);
        var s1 = (FloatVector) half.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        var s2 = (FloatVector) ki.sub(half).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        var result = p.mul(s1).mul(s2);
        VectorMask<Float> under = x.compare(VectorOperators.LT, MIN_INPUT);
        VectorMask<Float> over = x.compare(VectorOperators.GT, MAX_INPUT);
        result = result.blend(0f, under).blend(Float.POSITIVE_INFINITY, over);
        return result.blend(x, x.test(VectorOperators.IS_NAN));
    }

    /** tanh(x) = sign(x) · (1 − e^(−2|x|)) / (1 + e^(−2|x|)), which never overflows. */
    static FloatVector tanh(FloatVector x) {
        var e = exp(x.abs().mul(-2f));
        var t = e.neg().add(1f).div(e.add(1f));
        return t.blend(t.neg(), x.compare(VectorOperators.LT, 0f));
    }
}
