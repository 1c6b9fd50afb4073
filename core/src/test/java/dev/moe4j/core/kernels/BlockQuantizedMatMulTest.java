package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Products with block-quantised weights equal the products with the same weights decoded to F32: the kernels must
 * read the blocks as the codec (ggml's layout) does, in the decode, skinny and packed regimes.
 */
class BlockQuantizedMatMulTest {
    private static Tensor random(Random r, int... shape) {
        float[] v = new float[(int) Tensor.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Tensor.of(v, shape);
    }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> typesAndRows() {
        return java.util.Arrays.stream(DType.values()).filter(DType::isBlockQuantized).flatMap(t ->
                java.util.stream.IntStream.of(1, 2, 3, 5, 16, 17, 40, 130)
                        .mapToObj(n -> org.junit.jupiter.params.provider.Arguments.of(t, n)));
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("typesAndRows")
    void productsEqualProductsWithTheDecodedWeights(DType type, int n) {
        var r = new Random(n);
        int k = 768, m = 45; // m not a multiple of any tile; k three super-blocks, past one packing block (256)
        Tensor w = random(r, m, k).to(type);
        Tensor decoded = w.to(DType.F32);
        Tensor x = random(r, n, k);
        Tensor expected = Tensor.zeros(n, m), actual = Tensor.zeros(n, m);
        MatMul.forward(expected, x, decoded);
        MatMul.forward(actual, x, w);
        if (n == 1) {
            // one row goes through a decode kernel that sums in its own order (per block, per sub-block)
            float[] e = expected.toFloatArray(), a = actual.toFloatArray();
            float scale = 0;
            for (float v : e) {
                scale = Math.max(scale, Math.abs(v));
            }
            for (int i = 0; i < e.length; i++) {
                assertTrue(Math.abs(e[i] - a[i]) <= 1e-5f * scale, type + " column " + i + ": " + e[i] + " vs " + a[i]);
            }
        } else {
            // more rows read the blocks decoded exactly as the codec decodes them, through the F32 kernels
            assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), type + " with " + n + " rows");
        }
    }

    /** Types of 32-element blocks, decoded a row of x at a time, with an odd number of blocks per row. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "MXFP4", "F8_E4M3_B32"})
    void decodeTakesAnOddNumberOfBlocks(DType type) {
        var r = new Random(5);
        int k = 5 * 32, m = 9;
        Tensor w = random(r, m, k).to(type);
        Tensor x = random(r, 1, k);
        Tensor expected = Tensor.zeros(1, m), actual = Tensor.zeros(1, m);
        MatMul.forward(expected, x, w.to(DType.F32));
        MatMul.forward(actual, x, w);
        float[] e = expected.toFloatArray(), a = actual.toFloatArray();
        for (int i = 0; i < m; i++) {
            assertTrue(Math.abs(e[i] - a[i]) <= 1e-5f * Math.max(1, Math.abs(e[i])), type + " column " + i + ": " + e[i] + " vs " + a[i]);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7})
    void embeddingRowsOfBlocksAreDecoded(int rows) {
        var r = new Random(3);
        Tensor table = random(r, 20, 64).to(DType.Q8_0);
        int[] index = new int[rows];
        for (int i = 0; i < rows; i++) {
            index[i] = (i * 7 + 3) % 20;
        }
        Tensor out = Tensor.zeros(rows, 64);
        Gather.rows(out, table, index);
        float[] all = table.toFloatArray();
        for (int i = 0; i < rows; i++) {
            assertArrayEquals(java.util.Arrays.copyOfRange(all, index[i] * 64, index[i] * 64 + 64),
                    out.select(i).toFloatArray());
        }
    }
}
