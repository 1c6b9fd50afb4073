package dev.moe4j.core.kernels;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * The gated FFN activation over a fused gate/up projection: gateUp [n, 2I] → out [n, I], as {@link GluParams}
 * says. One matmul against the stacked [2I, H] gate+up weight then this kernel replaces two matmuls and an
 * elementwise product. Where a clamp is active its gradient is zero; at the limit itself the gradient passes,
 * as in PyTorch's clamp.
 */
public final class SwiGLU {
    private static final int GRAIN = 1 << 14;

    private SwiGLU() {
    }

    /** out[r, i] = glu(gate[r, i], up[r, i]) for every row r and i < I. */
    public static void forward(Tensor out, Tensor gateUp, GluParams p) {
        Checks.requireF32("SwiGLU.forward", out, gateUp);
        int inter = checkShapes("SwiGLU.forward", out, gateUp);
        MemorySegment os = out.segment(), gs = gateUp.segment();
        Parallel.forRange(gateUp.rows(), Checks.minRows(inter, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long in = (long) r * 2 * inter, o = (long) r * inter;
                switch (p) {
                    case GluParams.Gated g when g.layout() == GluParams.Layout.HALVES -> gatedHalves(g.activation(), gs, in, os, o, inter);
                    case GluParams.Gated g -> {
                        for (int i = 0; i < inter; i++) {
                            setF32(os, o + i, Activations.apply(g.activation(), getF32(gs, in + 2L * i)) * getF32(gs, in + 2L * i + 1));
                        }
                    }
                    case GluParams.Clamped c -> {
                        for (int i = 0; i < inter; i++) {
                            long gi = gateIndex(c.layout(), in, i, inter), ui = upIndex(c.layout(), in, i, inter);
                            setF32(os, o + i, clamped(c, getF32(gs, gi), getF32(gs, ui)));
                        }
                    }
                }
            }
        });
    }

    /** dGateUp (overwritten) from dOut and the forward input gateUp. */
    public static void backward(Tensor dGateUp, Tensor dOut, Tensor gateUp, GluParams p) {
        Checks.requireF32("SwiGLU.backward", dGateUp, dOut, gateUp);
        int inter = checkShapes("SwiGLU.backward", dOut, gateUp);
        Checks.requireSameSize("SwiGLU.backward", dGateUp, gateUp);
        MemorySegment ds = dGateUp.segment(), dos = dOut.segment(), gs = gateUp.segment();
        Parallel.forRange(gateUp.rows(), Checks.minRows(inter, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long in = (long) r * 2 * inter, o = (long) r * inter;
                switch (p) {
                    case GluParams.Gated g when g.layout() == GluParams.Layout.HALVES -> gatedHalvesBackward(g.activation(), gs, in, dos, o, ds, inter);
                    case GluParams.Gated g -> {
                        for (int i = 0; i < inter; i++) {
                            long gi = in + 2L * i, ui = gi + 1;
                            float gate = getF32(gs, gi), up = getF32(gs, ui), d = getF32(dos, o + i);
                            setF32(ds, gi, d * up * Activations.derivative(g.activation(), gate));
                            setF32(ds, ui, d * Activations.apply(g.activation(), gate));
                        }
                    }
                    case GluParams.Clamped c -> {
                        for (int i = 0; i < inter; i++) {
                            long gi = gateIndex(c.layout(), in, i, inter), ui = upIndex(c.layout(), in, i, inter);
                            clampedBackward(c, getF32(gs, gi), getF32(gs, ui), getF32(dos, o + i), ds, gi, ui);
                        }
                    }
                }
            }
        });
    }

    private static void gatedHalves(Activation act, MemorySegment gs, long in, MemorySegment os, long o, int inter) {
        int i = 0;
        for (int bound = F.loopBound(inter); i < bound; i += LANES) {
            Activations.apply(act, f32(gs, in + i)).mul(f32(gs, in + inter + i)).intoMemorySegment(os, (o + i) * 4, LE);
        }
        for (; i < inter; i++) {
            setF32(os, o + i, Activations.apply(act, getF32(gs, in + i)) * getF32(gs, in + inter + i));
        }
    }

    private static void gatedHalvesBackward(Activation act, MemorySegment gs, long in, MemorySegment dos, long o,
                                            MemorySegment ds, int inter) {
        int i = 0;
        for (int bound = F.loopBound(inter); i < bound; i += LANES) {
            FloatVector gate = f32(gs, in + i), up = f32(gs, in + inter + i), d = f32(dos, o + i);
            d.mul(up).mul(Activations.derivative(act, gate)).intoMemorySegment(ds, (in + i) * 4, LE);
            d.mul(Activations.apply(act, gate)).intoMemorySegment(ds, (in + inter + i) * 4, LE);
        }
        for (; i < inter; i++) {
            float gate = getF32(gs, in + i), up = getF32(gs, in + inter + i), d = getF32(dos, o + i);
            setF32(ds, in + i, d * up * Activations.derivative(act, gate));
            setF32(ds, in + inter + i, d * Activations.apply(act, gate));
        }
    }

    private static long gateIndex(GluParams.Layout layout, long in, int i, int inter) {
        return layout == GluParams.Layout.HALVES ? in + i : in + 2L * i;
    }

    private static long upIndex(GluParams.Layout layout, long in, int i, int inter) {
        return layout == GluParams.Layout.HALVES ? in + inter + i : in + 2L * i + 1;
    }

    private static float clamped(GluParams.Clamped c, float gate, float up) {
        float g = Math.min(gate, c.limit());
        float u = Math.max(-c.limit(), Math.min(up, c.limit()));
        float glu = g * (float) Activations.sigmoid((double) (g * c.alpha()));
        return (u + 1f) * glu;
    }

    private static void clampedBackward(GluParams.Clamped c, float gate, float up, float d, MemorySegment ds, long gi, long ui) {
        float limit = c.limit();
        float g = Math.min(gate, limit);
        float u = Math.max(-limit, Math.min(up, limit));
        double s = Activations.sigmoid(g * c.alpha());
        float glu = (float) (g * s);
        setF32(ds, ui, up >= -limit && up <= limit ? d * glu : 0f);
        float dGlu = (float) (s + c.alpha() * g * s * (1 - s));
        setF32(ds, gi, gate <= limit ? d * (u + 1f) * dGlu : 0f);
    }

    private static int checkShapes(String op, Tensor out, Tensor gateUp) {
        int twoI = gateUp.cols();
        Checks.require(twoI % 2 == 0, op + ": gate/up rows of odd length " + twoI);
        int inter = twoI / 2;
        Checks.require(out.cols() == inter && out.rows() == gateUp.rows(), op + ": " + out + " is not the output shape of " + gateUp);
        return inter;
    }
}
