package dev.moe4j.core.kernels;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

class SwiGLUTest {
    static GluParams params(String name) {
        return switch (name) {
            case "swiglu" -> GluParams.swiglu();
            case "geglu" -> GluParams.gated(Activation.GELU);
            case "geglu_tanh_interleaved" -> new GluParams.Gated(Activation.GELU_TANH, GluParams.Layout.INTERLEAVED);
            case "gptoss" -> GluParams.gptOss();
            case "clamped_halves" -> new GluParams.Clamped(1.702f, 2.5f, GluParams.Layout.HALVES);
            default -> throw new IllegalArgumentException(name);
        };
    }

    @ParameterizedTest
    @CsvSource({"swiglu,1,1", "swiglu,3,17", "swiglu,5,257", "geglu,2,33", "geglu_tanh_interleaved,3,19",
            "gptoss,4,33", "clamped_halves,3,40", "swiglu,64,96"})
    void forwardMatchesFloat64(String name, int rows, int inter) {
        GluParams p = params(name);
        var rnd = new Random(rows * 101L + inter);
        Tensor gateUp = RandomTensors.normal(rnd, 4.0, dev.moe4j.core.DType.F32, rows, 2 * inter);
        Tensor out = Tensor.zeros(rows, inter);
        SwiGLU.forward(out, gateUp, p);
        assertClose(Reference.glu(p, Reference.values(gateUp), rows, inter), out, 1e-6, name);
    }

    @ParameterizedTest
    @CsvSource({"swiglu,1,1", "swiglu,3,17", "geglu,2,33", "geglu_tanh_interleaved,1,21", "gptoss,3,33", "clamped_halves,2,40"})
    void backwardMatchesFiniteDifferencesOfFloat64Forward(String name, int rows, int inter) {
        GluParams p = params(name);
        var rnd = new Random(rows * 7L + inter);
        Tensor gateUp = RandomTensors.normal(rnd, 4.0, dev.moe4j.core.DType.F32, rows, 2 * inter);
        if (p instanceof GluParams.Clamped c) { // finite differences are meaningless right at a clamp's kink
            for (long i = 0; i < gateUp.size(); i++) {
                float v = gateUp.getFloat(i);
                if (Math.abs(Math.abs(v) - c.limit()) < 1e-3) {
                    gateUp.setFloat(i, v * 0.9f);
                }
            }
        }
        Tensor dOut = RandomTensors.normal(rnd, rows, inter);
        Tensor dGateUp = RandomTensors.normal(rnd, rows, 2 * inter); // overwritten
        SwiGLU.backward(dGateUp, dOut, gateUp, p);
        double[] expected = Reference.gradient(v -> Reference.glu(p, v, rows, inter), Reference.values(gateUp),
                Reference.values(dOut), 1e-6);
        assertClose(expected, dGateUp, 1e-5, name + " backward");
    }

    @Test
    void gptOssClampsGateAboveAndUpOnBothSidesWithZeroGradientBeyond() {
        // one row, I = 2, interleaved: (gate0, up0, gate1, up1)
        Tensor gateUp = Tensor.of(new float[] {9f, -8f, -9f, 10f}, 1, 4);
        Tensor out = Tensor.zeros(1, 2);
        SwiGLU.forward(out, gateUp, GluParams.gptOss());
        double glu7 = 7 / (1 + Math.exp(-1.702 * 7));
        assertEquals((-7 + 1) * glu7, out.getFloat(0), 1e-5); // gate 9 → 7, up −8 → −7
        double gluMinus9 = -9 / (1 + Math.exp(1.702 * 9));
        assertEquals((7 + 1) * gluMinus9, out.getFloat(1), 1e-6); // gate −9 unclamped, up 10 → 7

        Tensor d = Tensor.zeros(1, 4);
        SwiGLU.backward(d, Tensor.of(new float[] {1f, 1f}, 1, 2), gateUp, GluParams.gptOss());
        assertEquals(0f, d.getFloat(0)); // gate clamped
        assertEquals(0f, d.getFloat(1)); // up clamped below
        assertEquals(0f, d.getFloat(3)); // up clamped above
    }

    @ParameterizedTest
    @CsvSource({"swiglu,1,1", "swiglu,3,17", "geglu,2,33", "clamped_halves,4,40", "swiglu,5,257"})
    void separateGateAndUpGiveWhatTheFusedRowGives(String name, int rows, int inter) {
        GluParams p = params(name);
        var rnd = new Random(rows * 13L + inter);
        Tensor gateUp = RandomTensors.normal(rnd, 4.0, dev.moe4j.core.DType.F32, rows, 2 * inter);
        Tensor gate = Tensor.zeros(rows, inter), up = Tensor.zeros(rows, inter);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inter; i++) {
                gate.set(gateUp.get(r, i), r, i);
                up.set(gateUp.get(r, inter + i), r, i);
            }
        }
        Tensor fused = Tensor.zeros(rows, inter), separate = Tensor.zeros(rows, inter);
        SwiGLU.forward(fused, gateUp, p);
        SwiGLU.forward(separate, gate, up, p);
        assertClose(Reference.values(fused), separate, 0, name + " forward");

        Tensor dOut = RandomTensors.normal(rnd, rows, inter);
        Tensor dGateUp = Tensor.zeros(rows, 2 * inter), dGate = Tensor.zeros(rows, inter), dUp = Tensor.zeros(rows, inter);
        SwiGLU.backward(dGateUp, dOut, gateUp, p);
        SwiGLU.backward(dGate, dUp, dOut, gate, up, p);
        double[] expectedGate = new double[rows * inter], expectedUp = new double[rows * inter];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inter; i++) {
                expectedGate[r * inter + i] = dGateUp.get(r, i);
                expectedUp[r * inter + i] = dGateUp.get(r, inter + i);
            }
        }
        assertClose(expectedGate, dGate, 0, name + " dGate");
        assertClose(expectedUp, dUp, 0, name + " dUp");
    }
}
