package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class MatMulTest {
    @ParameterizedTest
    @CsvSource({"1,1,1,F32", "3,17,5,F32", "7,33,19,BF16", "2,64,31,F16", "13,100,3,F32", "1,257,33,BF16",
            "1,4096,3,F16", "5,3,1,F32", "7,70,9,F16", "16,40,13,BF16", "4,33,6,BF16", "1,100,17,F32", "1,40,16,BF16",
            // BF16 rows of whole vectors of word pairs, two rows of x at a time (odd counts leave one for widening)
            "2,64,7,BF16", "3,96,10,BF16", "16,64,13,BF16", "5,1024,9,BF16",
            // one row of x: short weight rows one at a time (whole steps of four vectors, and a tail; BF16 in two
            // accumulators, so odd vector counts too), long rows eight at a time
            "1,512,9,F32", "1,192,5,BF16", "1,208,5,BF16", "1,1048,3,BF16", "1,2048,3,BF16", "1,1536,19,F32", "1,2500,17,BF16", "1,1024,7,F32", "1,1040,5,F32", "1,3584,9,BF16", "1,4112,3,BF16",
            // 4 × 4 tiles (512-bit vectors) up to 64 rows where k is whole word-pair vectors: partial groups of W
            // rows and of x rows, and the first row count past them
            "4,64,4,F32", "9,32,6,BF16", "17,64,7,BF16", "33,96,13,F32", "63,64,30,BF16", "64,1024,5,F32",
            "65,64,9,BF16", "40,48,6,F32"})
    void fewRowsMatchFloat64(int n, int k, int m, DType weightType) {
        check(n, k, m, weightType);
    }

    /** Shapes past the few-rows paths: the packed kernel with partial tiles, k blocks and both thread splits. */
    @ParameterizedTest
    @CsvSource({"17,33,65,F32", "67,300,130,BF16", "40,129,200,F16", "100,64,7,F32", "23,513,1,F32",
            "800,20,70,BF16", "31,17,600,F32"})
    void manyRowsMatchFloat64(int n, int k, int m, DType weightType) {
        check(n, k, m, weightType);
    }

    /**
     * A row of x gets the same bits whether it comes with one other row (the two-row kernels) or with many (the
     * 4 × 4 tiles): sequences decoded together must not change one another's results.
     */
    @ParameterizedTest
    @CsvSource({"F32,64,0", "BF16,64,0", "BF16,1024,0", "Q8_0,256,0", "Q4_K,256,0", "BF16,64,3", "BF16,64,7",
            "BF16,1024,11"})
    void aRowGetsTheSameBitsWithTwoRowsOrMany(DType type, int k, int rows) {
        // an odd count ends in three rows, which only 16 lanes take in one pass (a lone last row sums in another order)
        assumeTrue(rows % 2 == 0 || MatMul.TILES, "three-row tiles need 512-bit vectors");
        var rnd = new Random(k);
        // 0: as many rows as the tiles take
        int n = rows > 0 ? rows : MatMul.TILES ? MatMul.tileRows(type) : MatMul.SKINNY_ROWS, m = 11;
        Tensor x = RandomTensors.normal(rnd, n, k), w = RandomTensors.normal(rnd, m, k).to(type);
        Tensor many = Tensor.zeros(n, m), two = Tensor.zeros(2, m);
        MatMul.forward(many, x, w);
        float[] together = many.toFloatArray();
        for (int pair = 0; pair < n; pair += 2) {
            int first = Math.min(pair, n - 2); // an odd count's last row comes in the pair that ends there
            MatMul.forward(two, x.slice(first, first + 2), w);
            float[] alone = two.toFloatArray();
            for (int i = 0; i < 2 * m; i++) {
                assertEquals(alone[i], together[first * m + i], type + " row " + (first + i / m) + " column " + i % m);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"3,10,7,BF16", "40,33,20,F32"})
    void multiplyTakesAWeightStoredInByOut(int n, int k, int m, DType type) {
        var rnd = new Random(n + k + m);
        Tensor x = RandomTensors.normal(rnd, n, k), w = RandomTensors.normal(rnd, type, k, m);
        Tensor y = Tensor.zeros(n, m);
        MatMul.multiply(y, x, w);
        assertClose(Reference.matmul(Reference.values(x), Reference.values(w), n, k, m), y, 1e-5, "x·w");
    }

    @Test
    void operandsMayBeViewsOrLiveOutsideTheHeap() {
        var rnd = new Random(9);
        int n = 40, k = 50, m = 30;
        Tensor big = RandomTensors.normal(rnd, n + 5, k);
        Tensor x = big.slice(5, n + 5); // a view at an offset into its array
        Tensor w = RandomTensors.normal(rnd, DType.BF16, m, k);
        double[] expected = Reference.matmulXWt(Reference.values(x), Reference.values(w), n, k, m);
        Tensor y = Tensor.zeros(n, m);
        MatMul.forward(y, x, w);
        assertClose(expected, y, 1e-5, "y from a view");
        try (Arena arena = Arena.ofShared()) { // kernels run on pool threads: not thread-confined
            Tensor native_ = Tensor.wrap(DType.F32, arena.allocate((long) n * k * 4), n, k);
            native_.copyFrom(x);
            Tensor y2 = Tensor.wrap(DType.F32, arena.allocate((long) n * m * 4), n, m);
            MatMul.forward(y2, native_, w);
            assertClose(expected, y2, 1e-5, "y off the heap");
        }
    }

    static void check(int n, int k, int m, DType weightType) {
        var rnd = new Random(n * 1000L + k * 10L + m);
        Tensor x = RandomTensors.normal(rnd, n, k), w = RandomTensors.normal(rnd, weightType, m, k);
        Tensor dy = RandomTensors.normal(rnd, n, m);
        double[] xd = Reference.values(x), wd = Reference.values(w), dyd = Reference.values(dy);
        double tol = 1e-5;

        Tensor y = RandomTensors.normal(rnd, n, m); // overwritten
        MatMul.forward(y, x, w);
        assertClose(Reference.matmulXWt(xd, wd, n, k, m), y, tol, "y");

        Tensor dx = RandomTensors.normal(rnd, n, k);
        MatMul.backwardInput(dx, dy, w, false);
        double[] dxExpected = Reference.matmul(dyd, wd, n, m, k);
        assertClose(dxExpected, dx, tol, "dx");
        double[] dxBefore = Reference.values(dx);
        MatMul.backwardInput(dx, dy, w, true);
        for (int i = 0; i < dxExpected.length; i++) {
            dxExpected[i] += dxBefore[i];
        }
        assertClose(dxExpected, dx, tol, "dx accumulated");

        Tensor dw = RandomTensors.normal(rnd, m, k);
        double[] dwExpected = Reference.matmul(Reference.transpose(dyd, n, m), xd, m, n, k);
        double[] dwBefore = Reference.values(dw);
        MatMul.backwardWeight(dw, dy, x, true);
        for (int i = 0; i < dwExpected.length; i++) {
            dwExpected[i] += dwBefore[i];
        }
        assertClose(dwExpected, dw, tol, "dw accumulated");
        MatMul.backwardWeight(dw, dy, x, false);
        assertClose(Reference.matmul(Reference.transpose(dyd, n, m), xd, m, n, k), dw, tol, "dw");
    }
}
