package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

class RmsNormTest {
    private static final float EPS = 1e-6f;

    @ParameterizedTest
    @CsvSource({"1,1,F32", "3,17,F32", "5,33,BF16", "2,257,F16", "17,64,F32", "4,3,NONE", "300,96,BF16"})
    void forwardMatchesFloat64(int rows, int cols, String weightType) {
        var rnd = new Random(rows * 31L + cols);
        Tensor x = RandomTensors.normal(rnd, rows, cols);
        Tensor w = weightType.equals("NONE") ? null : RandomTensors.normal(rnd, DType.valueOf(weightType), cols);
        double[] expected = Reference.rmsNorm(Reference.values(x), w == null ? null : Reference.values(w), rows, cols, EPS);

        Tensor y = Tensor.zeros(rows, cols);
        RmsNorm.forward(y, x, w, EPS);
        assertClose(expected, y, 1e-6, "y");

        RmsNorm.forward(x, x, w, EPS);
        assertClose(expected, x, 1e-6, "y in place");
    }

    @ParameterizedTest
    @CsvSource({"1,2,F32", "3,17,F32", "2,33,BF16", "1,257,F16", "4,5,NONE"})
    void backwardMatchesFiniteDifferencesOfFloat64Forward(int rows, int cols, String weightType) {
        var rnd = new Random(rows * 7L + cols);
        Tensor x = RandomTensors.normal(rnd, rows, cols), dy = RandomTensors.normal(rnd, rows, cols);
        Tensor w = weightType.equals("NONE") ? null : RandomTensors.normal(rnd, DType.valueOf(weightType), cols);
        double[] xd = Reference.values(x), dyd = Reference.values(dy), wd = w == null ? null : Reference.values(w);

        Tensor dx = RandomTensors.normal(rnd, rows, cols); // overwritten
        Tensor dw = w == null ? null : RandomTensors.normal(rnd, cols); // accumulated
        double[] dwBefore = dw == null ? null : Reference.values(dw);
        RmsNorm.backward(dx, dw, dy, x, w, EPS);

        assertClose(Reference.gradient(v -> Reference.rmsNorm(v, wd, rows, cols, EPS), xd, dyd, 1e-6), dx, 1e-5, "dx");
        if (w != null) {
            double[] expected = Reference.gradient(v -> Reference.rmsNorm(xd, v, rows, cols, EPS), wd, dyd, 1e-6);
            for (int c = 0; c < cols; c++) {
                expected[c] += dwBefore[c];
            }
            assertClose(expected, dw, 1e-5, "dWeight");
        }
    }

    @Test
    void weightGradientIsTheSameForEveryThreadCount() {
        var rnd = new Random(5);
        int rows = 700, cols = 129;
        Tensor x = RandomTensors.normal(rnd, rows, cols), dy = RandomTensors.normal(rnd, rows, cols);
        Tensor w = RandomTensors.normal(rnd, cols);
        int threads = Parallel.threads();
        try {
            Parallel.setThreads(1);
            Tensor dw1 = Tensor.zeros(cols), dx1 = Tensor.zeros(rows, cols);
            RmsNorm.backward(dx1, dw1, dy, x, w, EPS);
            Parallel.setThreads(3);
            Tensor dw3 = Tensor.zeros(cols), dx3 = Tensor.zeros(rows, cols);
            RmsNorm.backward(dx3, dw3, dy, x, w, EPS);
            assertArrayEquals(dw1.toFloatArray(), dw3.toFloatArray());
            assertArrayEquals(dx1.toFloatArray(), dx3.toFloatArray());
        } finally {
            Parallel.setThreads(threads);
        }
    }
}
