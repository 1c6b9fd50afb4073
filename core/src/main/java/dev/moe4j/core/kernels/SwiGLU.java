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
                    case GluParams.Gated g when g.layout() == GluParams.Layout.HALVES -> gated(g.activation(), gs, in, gs, in + inter, os, o, inter);
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
                    case GluParams.Gated g when g.layout() == GluParams.Layout.HALVES ->
                            gatedBackward(g.activation(), gs, in, gs, in + inter, dos, o, ds, in, ds, in + inter, inter);
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

    /**
     * out = glu(gate, up) for gate and up held apart, [n, I] each: checkpoints store each expert's gate and up
     * projections as separate tensors, so they come out of two matmuls. {@code p}'s layout is not used here.
     */
    public static void forward(Tensor out, Tensor gate, Tensor up, GluParams p) {
        Checks.requireF32("SwiGLU.forward", out, gate, up);
        int inter = checkSeparateShapes("SwiGLU.forward", out, gate, up);
        MemorySegment os = out.segment(), gs = gate.segment(), us = up.segment();
        Parallel.forRange(gate.rows(), Checks.minRows(inter, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long o = (long) r * inter;
                switch (p) {
                    case GluParams.Gated g -> gated(g.activation(), gs, o, us, o, os, o, inter);
                    case GluParams.Clamped c -> {
                        for (int i = 0; i < inter; i++) {
                            setF32(os, o + i, clamped(c, getF32(gs, o + i), getF32(us, o + i)));
                        }
                    }
                }
            }
        });
    }

    /** dGate and dUp (overwritten) from dOut and the forward inputs, for gate and up held apart. */
    public static void backward(Tensor dGate, Tensor dUp, Tensor dOut, Tensor gate, Tensor up, GluParams p) {
        Checks.requireF32("SwiGLU.backward", dGate, dUp, dOut, gate, up);
        int inter = checkSeparateShapes("SwiGLU.backward", dOut, gate, up);
        Checks.requireSameSize("SwiGLU.backward", dGate, gate);
        Checks.requireSameSize("SwiGLU.backward", dUp, up);
        MemorySegment dgs = dGate.segment(), dus = dUp.segment(), dos = dOut.segment(), gs = gate.segment(), us = up.segment();
        Parallel.forRange(gate.rows(), Checks.minRows(inter, GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long o = (long) r * inter;
                switch (p) {
                    case GluParams.Gated g -> gatedBackward(g.activation(), gs, o, us, o, dos, o, dgs, o, dus, o, inter);
                    case GluParams.Clamped c -> {
                        for (int i = 0; i < inter; i++) {
                            clampedBackward(c, getF32(gs, o + i), getF32(us, o + i), getF32(dos, o + i), dgs, o + i, dus, o + i);
                        }
                    }
                }
            }
        });
    }

    /** One row of act(gate)·up with gate and up at their own offsets (halves of one row, or two tensors). */
    private static void gated(Activation act, MemorySegment gs, long g0, MemorySegment us, long u0,
                              MemorySegment os, long o, int inter) {
        int i = 0;
        for (int bound = F.loopBound(inter); i < bound; i += LANES) {
            Activations.apply(act, f32(gs, g0 + i)).mul(f32(us, u0 + i)).intoMemorySegment(os, (o + i) * 4, LE);
        }
        for (; i < inter; i++) {
            setF32(os, o + i, Activations.apply(act, getF32(gs, g0 + i)) * getF32(us, u0 + i));
        }
    }

    private static void gatedBackward(Activation act, MemorySegment gs, long g0, MemorySegment us, long u0,
                                      MemorySegment dos, long o, MemorySegment dgs, long dg0, MemorySegment dus, long du0,
                                      int inter) {
        int i = 0;
        for (int bound = F.loopBound(inter); i < bound; i += LANES) {
            FloatVector gate = f32(gs, g0 + i), up = f32(us, u0 + i), d = f32(dos, o + i);
            d.mul(up).mul(Activations.derivative(act, gate)).intoMemorySegment(dgs, (dg0 + i) * 4, LE);
            d.mul(Activations.apply(act, gate)).intoMemorySegment(dus, (du0 + i) * 4, LE);
        }
        for (; i < inter; i++) {
            float gate = getF32(gs, g0 + i), up = getF32(us, u0 + i), d = getF32(dos, o + i);
            setF32(dgs, dg0 + i, d * up * Activations.derivative(act, gate));
            setF32(dus, du0 + i, d * Activations.apply(act, gate));
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
        clampedBackward(c, gate, up, d, ds, gi, ds, ui);
    }

    private static void clampedBackward(GluParams.Clamped c, float gate, float up, float d,
                                        MemorySegment dgs, long gi, MemorySegment dus, long ui) {
        float limit = c.limit();
        float g = Math.min(gate, limit);
        float u = Math.max(-limit, Math.min(up, limit));
        double s = Activations.sigmoid(g * c.alpha());
        float glu = (float) (g * s);
        setF32(dus, ui, up >= -limit && up <= limit ? d * glu : 0f);
        float dGlu = (float) (s + c.alpha() * g * s * (1 - s));
        setF32(dgs, gi, gate <= limit ? d * (u + 1f) * dGlu : 0f);
    }

    private static int checkSeparateShapes(String op, Tensor out, Tensor gate, Tensor up) {
        int inter = gate.cols();
        Checks.require(up.cols() == inter && up.rows() == gate.rows(), () -> op + ": gate " + gate + " and up " + up + " differ in shape");
        Checks.require(out.cols() == inter && out.rows() == gate.rows(), () -> op + ": " + out + " is not the output shape of " + gate);
        return inter;
    }

    private static int checkShapes(String op, Tensor out, Tensor gateUp) {
        int twoI = gateUp.cols();
        Checks.require(twoI % 2 == 0, () -> op + ": gate/up rows of odd length " + twoI);
        int inter = twoI / 2;
        Checks.require(out.cols() == inter && out.rows() == gateUp.rows(), () -> op + ": " + out + " is not the output shape of " + gateUp);
        return inter;
    }
}
