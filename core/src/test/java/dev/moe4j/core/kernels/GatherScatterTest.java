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
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class GatherScatterTest {
    @ParameterizedTest
    @CsvSource({"F32,F32,1,1,1", "F32,F32,10,17,25", "BF16,F32,50,33,7", "F16,F32,3,257,5", "BF16,BF16,20,64,40"})
    void gatherCopiesOrWidensTheIndexedRows(DType srcType, DType outType, int srcRows, int cols, int n) {
        var rnd = new Random(srcRows * 100L + cols);
        Tensor src = RandomTensors.normal(rnd, srcType, srcRows, cols);
        int[] index = rnd.ints(n, 0, srcRows).toArray();
        Tensor out = Tensor.zeros(outType, n, cols);
        Gather.rows(out, src, index);
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < cols; c++) {
                assertEquals(src.getFloat((long) index[i] * cols + c), out.getFloat((long) i * cols + c));
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1,1,1,true", "7,17,30,true", "3,33,10,false", "100,257,300,true", "5,3,0,true"})
    void scatterAddAccumulatesWeightedRowsIntoTheirDestinations(int dstRows, int cols, int n, boolean weighted) {
        var rnd = new Random(dstRows * 10L + n);
        Tensor dst = RandomTensors.normal(rnd, dstRows, cols), src = RandomTensors.normal(rnd, n, cols);
        int[] index = rnd.ints(n, 0, dstRows).toArray();
        float[] weight = weighted ? new float[n] : null;
        for (int i = 0; weighted && i < n; i++) {
            weight[i] = (float) rnd.nextGaussian();
        }
        double[] expected = Reference.values(dst), s = Reference.values(src);
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < cols; c++) {
                expected[index[i] * cols + c] += (weighted ? weight[i] : 1) * s[i * cols + c];
            }
        }
        ScatterAdd.rows(dst, src, index, weight);
        assertClose(expected, dst, 1e-6, "scatter-add");
    }

    @Test
    void scatterAddGivesTheSameSumsForEveryThreadCount() {
        var rnd = new Random(11);
        int dstRows = 64, cols = 300, n = 2000;
        Tensor src = RandomTensors.normal(rnd, n, cols);
        int[] index = rnd.ints(n, 0, dstRows).toArray();
        float[] weight = new float[n];
        for (int i = 0; i < n; i++) {
            weight[i] = rnd.nextFloat();
        }
        int threads = Parallel.threads();
        try {
            Parallel.setThreads(1);
            Tensor one = Tensor.zeros(dstRows, cols);
            ScatterAdd.rows(one, src, index, weight);
            Parallel.setThreads(3);
            Tensor three = Tensor.zeros(dstRows, cols);
            ScatterAdd.rows(three, src, index, weight);
            assertArrayEquals(one.toFloatArray(), three.toFloatArray());
        } finally {
            Parallel.setThreads(threads);
        }
    }

    @Test
    void scatterAddIsTheGradientOfGather() {
        // <gather(x), y> = <x, scatterAdd(y)> for any x, y: the adjoint relation of the two kernels
        var rnd = new Random(2);
        Tensor x = RandomTensors.normal(rnd, 9, 20), y = RandomTensors.normal(rnd, 15, 20);
        int[] index = rnd.ints(15, 0, 9).toArray();
        Tensor gx = Tensor.zeros(15, 20);
        Gather.rows(gx, x, index);
        Tensor sy = Tensor.zeros(9, 20);
        ScatterAdd.rows(sy, y, index, null);
        assertEquals(Reference.dotProduct(Reference.values(gx), Reference.values(y)),
                Reference.dotProduct(Reference.values(x), Reference.values(sy)), 1e-3);
    }

    @Test
    void indicesOutsideTheTableAreRejected() {
        Tensor src = Tensor.zeros(4, 3);
        assertThrows(IndexOutOfBoundsException.class, () -> Gather.rows(Tensor.zeros(1, 3), src, new int[] {4}));
        assertThrows(IndexOutOfBoundsException.class, () -> ScatterAdd.rows(src, Tensor.zeros(1, 3), new int[] {-1}, null));
    }
}
