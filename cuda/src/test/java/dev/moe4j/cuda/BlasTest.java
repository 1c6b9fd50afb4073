package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.testing.TensorAssert;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static dev.moe4j.cuda.Gpu.values;

/**
 * cuBLAS's products against the CPU's MatMul on the same BF16-rounded operands: F32 outputs differ only by the
 * order of summation, BF16 outputs by one rounding. Odd sizes, so that no shape is a multiple of a tile.
 */
class BlasTest {
    private static final double F32_TOLERANCE = 1e-5;
    private static final double BF16_TOLERANCE = 8e-3;

    @Test
    void theProductsOfALinearLayerMatchMatMul() {
        CudaDevice d = Gpu.device();
        var random = new Random(11);
        int m = 37, in = 53, out = 29;
        Tensor x = bf16Normal(random, 1, m, in), w = bf16Normal(random, 1, out, in), dy = bf16Normal(random, 1, m, out);
        Tensor wt = bf16Normal(random, 1, in, out);
        Tensor y = Tensor.zeros(m, out), y2 = Tensor.zeros(m, out), dx = Tensor.zeros(m, in);
        Tensor dw = bf16Normal(random, 1, out, in);
        Tensor dwBefore = dw.copy();
        MatMul.forward(y, x, w);
        MatMul.multiply(y2, x, wt);
        MatMul.backwardInput(dx, dy, w, false);
        MatMul.backwardWeight(dw, dy, x, true);
        Blas blas = d.blas();
        try (var scope = MemoryScope.open()) {
            Tensor gx = d.upload(x, DType.BF16), gw = d.upload(w, DType.BF16), gdy = d.upload(dy, DType.BF16);
            Tensor gwt = d.upload(wt, DType.BF16);
            for (DType outType : new DType[] {DType.F32, DType.BF16}) {
                double tolerance = outType == DType.F32 ? F32_TOLERANCE : BF16_TOLERANCE;
                Tensor gy = d.allocate(outType, m, out), gy2 = d.allocate(outType, m, out);
                Tensor gdx = d.allocate(outType, m, in);
                blas.linear(gy, gx, gw, 0f);
                blas.multiply(gy2, gx, gwt, 0f);
                blas.linearBackwardInput(gdx, gdy, gw, 0f);
                TensorAssert.assertClose(values(y), Tensor.of(Gpu.asFloats(gy), m, out), tolerance, "y = x·Wᵀ in " + outType);
                TensorAssert.assertClose(values(y2), Tensor.of(Gpu.asFloats(gy2), m, out), tolerance, "y = x·W in " + outType);
                TensorAssert.assertClose(values(dx), Tensor.of(Gpu.asFloats(gdx), m, in), tolerance, "dx = dy·W in " + outType);
            }
            Tensor gdw = d.upload(dwBefore, DType.F32);
            blas.linearBackwardWeight(gdw, gdy, gx, 1f);
            TensorAssert.assertClose(values(dw), gdw.toHost(), F32_TOLERANCE, "dW += dyᵀ·x");
        }
    }
}
