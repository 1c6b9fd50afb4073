package dev.moe4j.train.experiment;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class StatisticsTest {
    @Test
    void meanAndSampleStandardDeviationOverSeeds() {
        assertEquals(2.0, Statistics.mean(new double[] {1, 2, 3}), 1e-12);
        assertEquals(1.0, Statistics.std(new double[] {1, 2, 3}), 1e-12);
        assertEquals(0.0, Statistics.std(new double[] {5}), 0);
        assertEquals(Double.NaN, Statistics.mean(new double[0]));
    }

    @Test
    void mutualInformationIsZeroForIndependentRowsAndTheRowEntropyForADeterministicMapping() {
        double[][] independent = {{10, 20, 30, 40}, {5, 10, 15, 20}};
        assertEquals(0.0, Statistics.mutualInformation(independent), 1e-12);
        double[][] diagonal = {{7, 0, 0, 0}, {0, 7, 0, 0}, {0, 0, 7, 0}, {0, 0, 0, 7}};
        assertEquals(2.0, Statistics.mutualInformation(diagonal), 1e-12);
        assertEquals(2.0, Statistics.rowEntropy(diagonal), 1e-12);
        // Two rows, each spread evenly over its own pair of experts: one bit of the two.
        double[][] halves = {{3, 3, 0, 0}, {0, 0, 3, 3}};
        assertEquals(1.0, Statistics.mutualInformation(halves), 1e-12);
        assertEquals(2.0, Statistics.entropy(new double[] {6, 6, 6, 6}), 1e-12);
    }

    @Test
    void jensenShannonIsZeroForEqualAndOneBitForDisjointDistributions() {
        assertEquals(0.0, Statistics.jensenShannon(new double[] {1, 2, 3}, new double[] {2, 4, 6}), 1e-12);
        assertEquals(1.0, Statistics.jensenShannon(new double[] {1, 1, 0, 0}, new double[] {0, 0, 5, 5}), 1e-12);
        // p = (1, 0), q = (1/2, 1/2): JS = 1/2 KL(p||m) + 1/2 KL(q||m) with m = (3/4, 1/4)
        double expected = 0.5 * log2(4.0 / 3) + 0.5 * (0.5 * log2(0.5 / 0.75) + 0.5 * log2(0.5 / 0.25));
        assertEquals(expected, Statistics.jensenShannon(new double[] {1, 0}, new double[] {1, 1}), 1e-12);
    }

    private static double log2(double x) {
        return Math.log(x) / Math.log(2);
    }
}
