package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
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
    void theThreeProductsOfALinearLayerMatchMatMul() {
        CudaDevice d = Gpu.device();
        var random = new Random(11);
        int m = 37, in = 53, out = 29;
        Tensor x = bf16Normal(random, 1, m, in), w = bf16Normal(random, 1, out, in), dy = bf16Normal(random, 1, m, out);
        Tensor y = Tensor.zeros(m, out), dx = Tensor.zeros(m, in), dw = bf16Normal(random, 1, out, in);
        Tensor dwBefore = dw.copy();
        MatMul.forward(y, x, w);
        MatMul.backwardInput(dx, dy, w, false);
        MatMul.backwardWeight(dw, dy, x, true);
        Blas blas = d.blas();
        try (DeviceTensor gx = d.upload(x, DType.BF16); DeviceTensor gw = d.upload(w, DType.BF16);
             DeviceTensor gdy = d.upload(dy, DType.BF16)) {
            for (DType outType : new DType[] {DType.F32, DType.BF16}) {
                double tolerance = outType == DType.F32 ? F32_TOLERANCE : BF16_TOLERANCE;
                try (DeviceTensor gy = d.allocate(outType, m, out); DeviceTensor gdx = d.allocate(outType, m, in)) {
                    blas.linear(gy, gx, gw, 0f);
                    blas.linearBackwardInput(gdx, gdy, gw, 0f);
                    TensorAssert.assertClose(values(y), gy.toHostF32(), tolerance, "y = x·Wᵀ in " + outType);
                    TensorAssert.assertClose(values(dx), gdx.toHostF32(), tolerance, "dx = dy·W in " + outType);
                }
            }
            try (DeviceTensor gdw = d.upload(dwBefore, DType.F32)) {
                blas.linearBackwardWeight(gdw, gdy, gx, 1f);
                TensorAssert.assertClose(values(dw), gdw.toHostF32(), F32_TOLERANCE, "dW += dyᵀ·x");
            }
        }
    }

    @Test
    void groupedProductsEqualOneProductPerExpertInBothGroupings() {
        CudaDevice d = Gpu.device();
        Blas blas = d.blas();
        var random = new Random(12);
        int experts = 5, in = 40, out = 24;
        int[] offsets = {0, 7, 7, 26, 27, 45}; // expert 1 takes no rows
        int rows = offsets[experts];
        Tensor x = bf16Normal(random, 1, rows, in), w = bf16Normal(random, 1, experts, out, in);
        Tensor dy = bf16Normal(random, 1, rows, out), dwStart = bf16Normal(random, 1, experts, out, in);
        Tensor y = Tensor.zeros(rows, out), dx = Tensor.zeros(rows, in), dw = dwStart.copy();
        for (int e = 0; e < experts; e++) {
            if (offsets[e + 1] > offsets[e]) {
                MatMul.forward(y.slice(offsets[e], offsets[e + 1]), x.slice(offsets[e], offsets[e + 1]), w.select(e));
                MatMul.backwardInput(dx.slice(offsets[e], offsets[e + 1]), dy.slice(offsets[e], offsets[e + 1]), w.select(e), false);
                MatMul.backwardWeight(dw.select(e), dy.slice(offsets[e], offsets[e + 1]), x.slice(offsets[e], offsets[e + 1]), true);
            }
        }
        Blas.Grouping before = blas.grouping();
        try (DeviceTensor gx = d.upload(x, DType.BF16); DeviceTensor gw = d.upload(w, DType.BF16);
             DeviceTensor gdy = d.upload(dy, DType.BF16)) {
            for (Blas.Grouping grouping : Blas.Grouping.values()) {
                if (grouping == Blas.Grouping.GROUPED && !blas.hasGroupedGemm()) {
                    continue;
                }
                blas.grouping(grouping);
                // BF16 outputs take cuBLAS's grouped call in GROUPED; F32 outputs fall back to one call per expert.
                for (DType outType : new DType[] {DType.BF16, DType.F32}) {
                    double tolerance = outType == DType.F32 ? F32_TOLERANCE : BF16_TOLERANCE;
                    String what = grouping + " with " + outType + " outputs: ";
                    try (DeviceTensor gy = d.allocate(outType, rows, out); DeviceTensor gdx = d.allocate(outType, rows, in);
                         DeviceTensor gdw = d.upload(dwStart, outType)) {
                        blas.groupedLinear(gy, gx, gw, offsets, 0f);
                        blas.groupedLinearBackwardInput(gdx, gdy, gw, offsets, 0f);
                        blas.groupedLinearBackwardWeight(gdw, gdy, gx, offsets, 1f);
                        TensorAssert.assertClose(values(y), gy.toHostF32(), tolerance, what + "forward");
                        TensorAssert.assertClose(values(dx), gdx.toHostF32(), tolerance, what + "input gradient");
                        TensorAssert.assertClose(values(dw), gdw.toHostF32(), tolerance, what + "weight gradient");
                    }
                }
            }
        } finally {
            blas.grouping(before);
        }
    }
}
