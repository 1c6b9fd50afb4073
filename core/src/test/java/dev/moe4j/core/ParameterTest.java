package dev.moe4j.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ParameterTest {
    @Test
    void gradientIsAllocatedOnDemandAsF32ZerosOfTheValueShape() {
        var p = new Parameter("w", Tensor.zeros(DType.BF16, 3, 2));
        assertFalse(p.hasGrad());
        Tensor g = p.grad();
        assertTrue(p.hasGrad());
        assertEquals(DType.F32, g.dtype());
        assertArrayEquals(new int[] {3, 2}, g.shape());
        assertSame(g, p.grad());
    }

    @Test
    void zeroGradClearsTheAccumulatedGradient() {
        var p = new Parameter("w", Tensor.zeros(2));
        p.zeroGrad();
        assertFalse(p.hasGrad(), "zeroGrad must not allocate");
        p.grad().setFloat(1, 5f);
        p.zeroGrad();
        assertArrayEquals(new float[] {0f, 0f}, p.grad().toFloatArray());
    }

    @Test
    void aFrozenParameterTakesNoGradientInAGraph() {
        var p = new Parameter("w", Tensor.zeros(2, 2)).freeze();
        assertFalse(p.requiresGrad());
        var g = dev.moe4j.core.autograd.Graph.training();
        assertFalse(g.result(Tensor.zeros(1), p).requiresGrad(), "an op over frozen parameters only needs no backward");
    }
}
