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
import static org.junit.jupiter.api.Assertions.assertTrue;

class SoftmaxTest {
    @ParameterizedTest
    @CsvSource({"1,1", "3,17", "5,33", "2,257", "70,64", "1,1000"})
    void forwardAndLogSumExpMatchFloat64(int rows, int cols) {
        var rnd = new Random(rows * 13L + cols);
        Tensor x = RandomTensors.normal(rnd, 4.0, dev.moe4j.core.DType.F32, rows, cols);
        double[] xd = Reference.values(x);

        Tensor y = Tensor.zeros(rows, cols);
        Softmax.forward(y, x);
        assertClose(Reference.softmax(xd, rows, cols), y, 1e-6, "softmax");

        float[] lse = new float[rows];
        Softmax.logSumExp(x, lse);
        assertClose(Reference.logSumExp(xd, rows, cols), lse, 1e-6, "logSumExp");

        Softmax.forward(x, x);
        assertClose(Reference.softmax(xd, rows, cols), x, 1e-6, "softmax in place");
    }

    @Test
    void largeLogitsDoNotOverflow() {
        Tensor x = Tensor.of(new float[] {1000f, 999f, -1000f, 1000f}, 1, 4);
        Tensor y = Tensor.zeros(1, 4);
        Softmax.forward(y, x);
        double[] expected = Reference.softmax(Reference.values(x), 1, 4);
        assertClose(expected, y, 1e-6, "softmax of large logits");
        float[] lse = new float[1];
        Softmax.logSumExp(x, lse);
        assertEquals(1000 + Math.log(2 + Math.exp(-1)), lse[0], 1e-3);
    }

    @Test
    void maskedEntriesGetZeroProbability() {
        Tensor x = Tensor.of(new float[] {0f, Float.NEGATIVE_INFINITY, 1f}, 1, 3);
        Softmax.forward(x, x);
        assertEquals(0f, x.getFloat(1));
        assertTrue(Math.abs(x.getFloat(0) + x.getFloat(2) - 1) < 1e-6);
    }

    @ParameterizedTest
    @CsvSource({"1,1", "3,17", "2,33", "1,257"})
    void backwardMatchesFiniteDifferencesOfFloat64Forward(int rows, int cols) {
        var rnd = new Random(rows * 17L + cols);
        Tensor x = RandomTensors.normal(rnd, rows, cols), dy = RandomTensors.normal(rnd, rows, cols);
        Tensor y = Tensor.zeros(rows, cols);
        Softmax.forward(y, x);
        Tensor dx = Tensor.zeros(rows, cols);
        Softmax.backward(dx, dy, y);
        double[] expected = Reference.gradient(v -> Reference.softmax(v, rows, cols), Reference.values(x), Reference.values(dy), 1e-6);
        assertClose(expected, dx, 1e-5, "dx");
    }
}
