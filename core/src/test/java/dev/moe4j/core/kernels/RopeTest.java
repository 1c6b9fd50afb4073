package dev.moe4j.core.kernels;

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

class RopeTest {
    @ParameterizedTest
    @CsvSource({"HALF,1,1,2,2", "HALF,3,4,16,16", "HALF,5,2,64,64", "HALF,7,3,24,8", "HALF,2,2,128,64",
            "INTERLEAVED,3,4,16,16", "INTERLEAVED,4,2,24,8", "INTERLEAVED,2,1,66,34"})
    void forwardMatchesFloat64AndBackwardIsItsTranspose(RopeLayout layout, int tokens, int heads, int headDim, int rotaryDim) {
        var rnd = new Random(tokens * 1000L + heads * 100L + headDim);
        var freqs = RopeFrequencies.yarn(10000, rotaryDim, RopeFrequencies.Yarn.of(4, 64));
        var table = new RopeTable(freqs, 200);
        int[] positions = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            positions[t] = rnd.nextInt(200);
        }
        Tensor x = RandomTensors.normal(rnd, tokens, heads * headDim);
        double[] xd = Reference.values(x);
        double[] expected = Reference.rope(xd, positions, freqs.invFreq(), freqs.attentionScaling(), layout, headDim, rotaryDim);
        Rope.forward(x, positions, table, layout, headDim, rotaryDim);
        assertClose(expected, x, 1e-6, "rope forward");

        Tensor dy = RandomTensors.normal(rnd, tokens, heads, headDim); // the 3-d form works too
        double[] dyd = Reference.values(dy);
        double[] grad = Reference.gradient(v -> Reference.rope(v, positions, freqs.invFreq(), freqs.attentionScaling(),
                layout, headDim, rotaryDim), xd, dyd, 1e-6);
        Rope.backward(dy, positions, table, layout, headDim, rotaryDim);
        assertClose(grad, dy, 1e-5, "rope backward");
    }

    @Test
    void backwardUndoesForwardWithoutScaling() {
        var rnd = new Random(3);
        var table = new RopeTable(RopeFrequencies.standard(500000, 32), 64);
        int[] positions = {0, 5, 63};
        Tensor x = RandomTensors.normal(rnd, 3, 64);
        float[] original = x.toFloatArray();
        Rope.forward(x, positions, table, RopeLayout.HALF, 32, 32);
        Rope.backward(x, positions, table, RopeLayout.HALF, 32, 32);
        float[] back = x.toFloatArray();
        for (int i = 0; i < back.length; i++) {
            assertEquals(original[i], back[i], 1e-5);
        }
    }

    @Test
    void positionZeroAndUnrotatedTailAreLeftAlone() {
        var table = new RopeTable(RopeFrequencies.standard(10000, 4), 8);
        float[] v = {1, 2, 3, 4, 5, 6};
        Tensor x = Tensor.of(v.clone(), 1, 6);
        Rope.forward(x, new int[] {0}, table, RopeLayout.HALF, 6, 4);
        assertArrayEquals(v, x.toFloatArray());
        Rope.forward(x, new int[] {3}, table, RopeLayout.HALF, 6, 4);
        assertEquals(5f, x.getFloat(4));
        assertEquals(6f, x.getFloat(5));
    }

    @Test
    void positionsOutsideTheTableAreRejected() {
        var table = new RopeTable(RopeFrequencies.standard(10000, 4), 8);
        Tensor x = Tensor.zeros(1, 4);
        assertThrows(IllegalArgumentException.class, () -> Rope.forward(x, new int[] {8}, table, RopeLayout.HALF, 4, 4));
    }
}
