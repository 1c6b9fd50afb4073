package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

class VectorMathTest {
    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 257, 100_003})
    void elementwiseOperationsMatchFloat64(int n) {
        var rnd = new Random(n);
        Tensor a = RandomTensors.normal(rnd, n), b = RandomTensors.normal(rnd, n);
        double[] ad = Reference.values(a), bd = Reference.values(b);
        double[] sum = new double[n], product = new double[n], axpy = new double[n];
        for (int i = 0; i < n; i++) {
            sum[i] = ad[i] + bd[i];
            product[i] = ad[i] * bd[i];
            axpy[i] = bd[i] + 0.5 * ad[i];
        }
        Tensor out = Tensor.zeros(n);
        VectorMath.add(out, a, b);
        assertClose(sum, out, 1e-7, "add");
        VectorMath.mul(out, a, b);
        assertClose(product, out, 1e-7, "mul");
        Tensor y = b.copy();
        VectorMath.axpy(0.5f, a, y);
        assertClose(axpy, y, 1e-7, "axpy");
        VectorMath.addInPlace(y, a);
        VectorMath.scale(y, 2f);
        for (int i = 0; i < n; i++) {
            axpy[i] = 2 * (axpy[i] + ad[i]);
        }
        assertClose(axpy, y, 1e-6, "addInPlace, scale");
        assertEquals(Reference.dotProduct(ad, bd), VectorMath.dot(a, b), 1e-5 * Math.max(1, n));
    }

    @ParameterizedTest
    @ValueSource(strings = {"F32", "BF16", "F16"})
    void dotAndRowVectorsReadWeightsOfAnyFloatType(String type) {
        var rnd = new Random(type.hashCode());
        int rows = 5, cols = 37;
        Tensor x = RandomTensors.normal(rnd, rows, cols), bias = RandomTensors.normal(rnd, DType.valueOf(type), cols);
        double[] xd = Reference.values(x), bd = Reference.values(bias);
        assertEquals(Reference.dotProduct(java.util.Arrays.copyOfRange(xd, 2 * cols, 3 * cols), bd),
                VectorMath.dot(x, 2L * cols, bias, 0, cols), 1e-4);

        VectorMath.addRowVector(x, bias);
        double[] expected = xd.clone();
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                expected[r * cols + c] += bd[c];
            }
        }
        assertClose(expected, x, 1e-7, "addRowVector");

        Tensor acc = Tensor.zeros(cols);
        acc.fill(1f);
        VectorMath.addColumnSums(acc, x);
        double[] sums = new double[cols];
        for (int c = 0; c < cols; c++) {
            sums[c] = 1;
            for (int r = 0; r < rows; r++) {
                sums[c] += expected[r * cols + c];
            }
        }
        assertClose(sums, acc, 1e-6, "addColumnSums");
    }
}
