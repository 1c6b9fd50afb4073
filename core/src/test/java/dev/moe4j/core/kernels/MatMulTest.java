package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

class MatMulTest {
    @ParameterizedTest
    @CsvSource({"1,1,1,F32", "3,17,5,F32", "7,33,19,BF16", "2,64,31,F16", "13,100,3,F32"})
    void forwardAndBackwardMatchFloat64(int n, int k, int m, DType weightType) {
        var rnd = new Random(n * 1000L + k * 10L + m);
        Tensor x = random(rnd, n, k), w = random(rnd, m, k).to(weightType), dy = random(rnd, n, m);
        double[][] xd = toRows(x), wd = toRows(w), dyd = toRows(dy);

        Tensor y = Tensor.zeros(n, m);
        MatMul.forward(y, x, w);
        assertClose(naive(xd, transpose(wd)), y);

        Tensor dx = Tensor.zeros(n, k);
        MatMul.backwardInput(dx, dy, w, false);
        assertClose(naive(dyd, wd), dx);

        Tensor dw = random(rnd, m, k);
        double[][] before = toRows(dw);
        MatMul.backwardWeight(dw, dy, x, true);
        double[][] expected = naive(transpose(dyd), xd);
        for (int j = 0; j < m; j++) {
            for (int c = 0; c < k; c++) {
                expected[j][c] += before[j][c];
            }
        }
        assertClose(expected, dw);
    }

    static Tensor random(Random rnd, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Tensor.of(v, rows, cols);
    }

    static double[][] toRows(Tensor t) {
        double[][] out = new double[t.rows()][t.cols()];
        for (int i = 0; i < t.rows(); i++) {
            for (int j = 0; j < t.cols(); j++) {
                out[i][j] = t.getFloat((long) i * t.cols() + j);
            }
        }
        return out;
    }

    static double[][] transpose(double[][] a) {
        double[][] t = new double[a[0].length][a.length];
        for (int i = 0; i < a.length; i++) {
            for (int j = 0; j < a[0].length; j++) {
                t[j][i] = a[i][j];
            }
        }
        return t;
    }

    static double[][] naive(double[][] a, double[][] b) {
        double[][] c = new double[a.length][b[0].length];
        for (int i = 0; i < a.length; i++) {
            for (int j = 0; j < b[0].length; j++) {
                double s = 0;
                for (int p = 0; p < b.length; p++) {
                    s += a[i][p] * b[p][j];
                }
                c[i][j] = s;
            }
        }
        return c;
    }

    static void assertClose(double[][] expected, Tensor actual) {
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < expected.length; i++) {
            for (int j = 0; j < expected[0].length; j++) {
                maxRef = Math.max(maxRef, Math.abs(expected[i][j]));
                maxErr = Math.max(maxErr, Math.abs(expected[i][j] - actual.getFloat((long) i * expected[0].length + j)));
            }
        }
        assertTrue(maxErr <= 1e-5 * Math.max(1, maxRef), "max error " + maxErr + " (max |ref| " + maxRef + ")");
    }
}
