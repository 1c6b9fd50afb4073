package dev.moe4j.core.kernels;

import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class TopKTest {
    /** The top k by a full sort: value descending (NaN first), then index ascending. */
    static int[] sortedTopK(float[] row, int k) {
        Comparator<Integer> order = (a, b) -> {
            float va = row[a], vb = row[b];
            if (Float.isNaN(va) || Float.isNaN(vb)) {
                if (Float.isNaN(va) && Float.isNaN(vb)) {
                    return Integer.compare(a, b);
                }
                return Float.isNaN(va) ? -1 : 1;
            }
            return va != vb ? Float.compare(vb, va) == 0 ? Integer.compare(a, b) : (va > vb ? -1 : 1) : Integer.compare(a, b);
        };
        return IntStream.range(0, row.length).boxed().sorted(order).limit(k).mapToInt(Integer::intValue).toArray();
    }

    @ParameterizedTest
    @CsvSource({"1,1,1", "3,8,2", "5,64,6", "2,257,16", "4,33,17", "3,1000,100", "2,5,5", "2,7,0"})
    void selectMatchesAFullSortWithTiesByLowerIndex(int rows, int n, int k) {
        var rnd = new Random(rows * 1000L + n * 10L + k);
        float[] v = new float[rows * n];
        for (int i = 0; i < v.length; i++) {
            v[i] = rnd.nextInt(7) - 3; // many ties
            if (rnd.nextInt(10) == 0) {
                v[i] += (float) rnd.nextGaussian();
            }
        }
        int[] index = new int[rows * k];
        float[] value = new float[rows * k];
        TopK.select(Tensor.of(v, rows, n), k, index, value);
        for (int r = 0; r < rows; r++) {
            float[] row = Arrays.copyOfRange(v, r * n, (r + 1) * n);
            int[] expected = sortedTopK(row, k);
            assertArrayEquals(expected, Arrays.copyOfRange(index, r * k, (r + 1) * k), "row " + r);
            for (int j = 0; j < k; j++) {
                assertEquals(row[expected[j]], value[r * k + j]);
            }
        }
    }

    @Test
    void nanRanksFirstAsInTorch() {
        float[] row = {1f, Float.NaN, 3f, 2f};
        int[] index = new int[2];
        float[] value = new float[2];
        TopK.row(row, 0, 4, 2, index, value, 0);
        assertArrayEquals(new int[] {1, 2}, index);
    }

    @Test
    void rowWorksOnASliceAndWritesAtAnOffset() {
        float[] scores = {9f, 9f, 0.1f, 0.7f, 0.2f, 0.7f, 9f};
        int[] index = new int[5];
        float[] value = new float[5];
        TopK.row(scores, 2, 4, 3, index, value, 2); // slice {0.1, 0.7, 0.2, 0.7}
        assertArrayEquals(new int[] {0, 0, 1, 3, 2}, index);
        assertArrayEquals(new float[] {0, 0, 0.7f, 0.7f, 0.2f}, value);
    }
}
