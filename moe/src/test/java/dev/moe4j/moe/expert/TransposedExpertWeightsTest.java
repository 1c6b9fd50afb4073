package dev.moe4j.moe.expert;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.moe.testing.FiniteDifferences;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Experts stored [in, out] (gpt-oss) compute what the same experts stored [out, in] compute, without a copy. */
class TransposedExpertWeightsTest {
    @Test
    void transposedExpertsEqualTheStackedOnes() {
        var random = new Random(3);
        int e = 3, h = 12, inter = 5;
        Tensor gateUp = FiniteDifferences.gaussian(random, 0.5, e, 2 * inter, h);
        Tensor down = FiniteDifferences.gaussian(random, 0.5, e, h, inter);
        Tensor gateUpBias = FiniteDifferences.gaussian(random, 0.5, e, 2 * inter);
        Tensor downBias = FiniteDifferences.gaussian(random, 0.5, e, h);
        var ffn = new ExpertFfn.Gated(new GluParams.Clamped(1.702f, 7f, GluParams.Layout.INTERLEAVED));
        var stacked = new Experts(ffn, new StackedExpertWeights("experts.", true, gateUp, down, gateUpBias, downBias));
        // The same weights as a gpt-oss checkpoint stores them, in F32.
        var transposed = new Experts(ffn, new TransposedExpertWeights(transpose(gateUp), transpose(down), gateUpBias,
                downBias));
        Tensor x = FiniteDifferences.gaussian(random, 1, 7, h);
        int[] offsets = {0, 3, 3, 7}; // expert 1 gets no rows
        Tensor expected = stacked.forward(x, offsets).output(), actual = transposed.forward(x, offsets).output();
        double error = FiniteDifferences.relativeError(FiniteDifferences.toDouble(expected), actual.toFloatArray());
        assertTrue(error < 1e-6, "relative error " + error);
        assertTrue(transposed.weights().transposed() && actual.dtype() == DType.F32);
    }

    private static Tensor transpose(Tensor t) {
        int e = t.dim(0), rows = t.dim(1), cols = t.dim(2);
        Tensor out = Tensor.zeros(e, cols, rows);
        for (int x = 0; x < e; x++) {
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    out.set(t.get(x, r, c), x, c, r);
                }
            }
        }
        return out;
    }
}
