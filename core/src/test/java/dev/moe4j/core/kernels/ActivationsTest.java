package dev.moe4j.core.kernels;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ActivationsTest {
    @ParameterizedTest
    @CsvSource({"SILU,1", "SILU,257", "GELU_TANH,33", "GELU_TANH,1000", "GELU,17", "GELU,4099", "RELU,3", "RELU,100"})
    void forwardMatchesFloat64(Activation kind, int n) {
        var rnd = new Random(n);
        Tensor x = RandomTensors.uniform(rnd, -12, 12, n);
        double[] expected = Reference.activation(kind, Reference.values(x));
        Tensor y = Tensor.zeros(n);
        Activations.forward(kind, y, x);
        assertClose(expected, y, 1e-6, kind + " forward");
        // small arguments, where GELU's erf tail matters relative to the value
        Tensor small = RandomTensors.uniform(rnd, -1, 1, n);
        Activations.forward(kind, y, small);
        assertClose(Reference.activation(kind, Reference.values(small)), y, 1e-6, kind + " forward near 0");
    }

    @Test
    void exactGeluKeepsRelativePrecisionInItsNegativeTail() {
        float[] xs = new float[40]; // long enough for the vector path
        for (int i = 0; i < xs.length; i++) {
            xs[i] = -3f - i * 0.15f;
        }
        Tensor y = Tensor.zeros(xs.length);
        Activations.forward(Activation.GELU, y, Tensor.vector(xs.clone()));
        for (int i = 0; i < xs.length; i++) {
            double expected = Reference.activation(Activation.GELU, xs[i]);
            assertEquals(expected, y.getFloat(i), Math.abs(expected) * 1e-5, "gelu(" + xs[i] + ")");
        }
    }

    @ParameterizedTest
    @CsvSource({"SILU,37", "GELU_TANH,33", "GELU,17", "RELU,64"})
    void backwardMatchesFiniteDifferencesOfFloat64Forward(Activation kind, int n) {
        var rnd = new Random(n * 3L);
        Tensor x = RandomTensors.uniform(rnd, -6, 6, n), dy = RandomTensors.normal(rnd, n);
        if (kind == Activation.RELU) {
            for (int i = 0; i < n; i++) { // keep away from the kink, where the derivative is a convention
                if (Math.abs(x.getFloat(i)) < 1e-3) {
                    x.setFloat(i, 0.5f);
                }
            }
        }
        Tensor dx = Tensor.zeros(n);
        Activations.backward(kind, dx, dy, x);
        double[] expected = Reference.gradient(v -> Reference.activation(kind, v), Reference.values(x), Reference.values(dy), 1e-6);
        assertClose(expected, dx, 1e-5, kind + " backward");
    }

    @Test
    void huggingFaceNamesMapToTheirFunctions() {
        assertEquals(Activation.SILU, Activation.fromHuggingFace("silu"));
        assertEquals(Activation.SILU, Activation.fromHuggingFace("swish"));
        assertEquals(Activation.GELU, Activation.fromHuggingFace("gelu"));
        assertEquals(Activation.GELU_TANH, Activation.fromHuggingFace("gelu_new"));
        assertEquals(Activation.GELU_TANH, Activation.fromHuggingFace("gelu_pytorch_tanh"));
        assertEquals(Activation.RELU, Activation.fromHuggingFace("relu"));
        var e = assertThrows(BadInputException.class, () -> Activation.fromHuggingFace("mish"));
        assertTrue(e.getMessage().contains("hidden_act 'mish'"), e.getMessage());
    }
}
