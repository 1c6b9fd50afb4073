package dev.moe4j.core.testing;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The yardstick itself is checked against published values. */
class ReferenceTest {
    @Test
    void erfcAgreesWithTabulatedValuesOnBothSidesOfTheMethodSwitch() {
        // values of libm's erfc (Python's math.erfc)
        double[][] table = {{0.5, 0.4795001221869535}, {2, 0.004677734981047265}, {5, 1.5374597944280351e-12},
                {-1, 1.842700792949715}, {3.0, 2.2090496998585438e-05}, {2.999, 2.2230168599834058e-05}};
        for (double[] row : table) {
            assertEquals(row[1], Reference.erfc(row[0]), row[1] * 1e-9, "erfc(" + row[0] + ")");
        }
    }

    @Test
    void matmulXWtMultipliesByTheTransposedWeight() {
        double[] x = {1, 2, 3, 4}; // [2, 2]
        double[] w = {1, 0, 1, 1, 0, 2}; // [3, 2]
        assertEquals(java.util.Arrays.toString(new double[] {1, 3, 4, 3, 7, 8}),
                java.util.Arrays.toString(Reference.matmulXWt(x, w, 2, 2, 3)));
    }
}
