package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver bindings through device tensors: copies, views, fills, conversions, launches and their errors. */
class DeviceTensorTest {
    @Test
    void valuesSurviveTheRoundTripInEveryDtype() {
        CudaDevice d = Gpu.device();
        var random = new Random(1);
        for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            Tensor host = RandomTensors.normal(random, dtype, 7, 13);
            try (DeviceTensor t = d.upload(host)) {
                assertEquals(host.dtype(), t.toHost().dtype());
                assertArrayEquals(host.toFloatArray(), t.toHost().toFloatArray(), dtype.toString());
            }
        }
        Tensor ints = Tensor.zeros(DType.I32, 5);
        for (int i = 0; i < 5; i++) {
            ints.setLong(i, i * 1000003L);
        }
        try (DeviceTensor t = d.upload(ints)) {
            assertEquals(4 * 1000003L, t.toHost().getLong(4));
        }
    }

    @Test
    void slicesAndSelectionsViewTheSameMemory() {
        CudaDevice d = Gpu.device();
        Tensor host = RandomTensors.normal(new Random(2), 4, 3, 5);
        try (DeviceTensor t = d.upload(host)) {
            assertArrayEquals(host.select(2).toFloatArray(), t.select(2).toHost().toFloatArray());
            assertArrayEquals(host.slice(1, 3).toFloatArray(), t.slice(1, 3).toHost().toFloatArray());
            assertEquals(t.address() + 2L * 3 * 5 * 4, t.select(2).address());
            t.select(1).fillZero();
            float[] back = t.toHost().toFloatArray();
            for (int i = 15; i < 30; i++) {
                assertEquals(0f, back[i]);
            }
            assertEquals(host.getFloat(30), back[30]);
        }
    }

    @Test
    void fillsAndConversionsMatchTheHost() {
        CudaDevice d = Gpu.device();
        Tensor host = RandomTensors.normal(new Random(3), 1000, 3);
        try (DeviceTensor f = d.upload(host); DeviceTensor b = DeviceOps.toBf16(f); DeviceTensor back = DeviceOps.toF32(b)) {
            assertArrayEquals(host.to(DType.BF16).toFloatArray(), b.toHost().toFloatArray());
            assertArrayEquals(host.to(DType.BF16).toFloatArray(), back.toHost().toFloatArray());
            f.fill(2.5f);
            for (float v : f.toHost().toFloatArray()) {
                assertEquals(2.5f, v);
            }
        }
    }

    @Test
    void seededNormalFillsAreReproducibleAndHaveTheirStandardDeviation() {
        CudaDevice d = Gpu.device();
        try (DeviceTensor a = d.allocate(DType.BF16, 1 << 20); DeviceTensor b = d.allocate(DType.BF16, 1 << 20);
             DeviceTensor c = d.allocate(DType.BF16, 1 << 20)) {
            DeviceOps.fillNormal(a, 42, 0.5);
            DeviceOps.fillNormal(b, 42, 0.5);
            DeviceOps.fillNormal(c, 43, 0.5);
            float[] va = a.toHost().toFloatArray();
            assertArrayEquals(va, b.toHost().toFloatArray());
            assertNotEquals(va[0], c.toHost().toFloatArray()[0]);
            double sum = 0, squares = 0;
            for (float v : va) {
                sum += v;
                squares += v * v;
            }
            double mean = sum / va.length, std = Math.sqrt(squares / va.length - mean * mean);
            assertEquals(0, mean, 0.005);
            assertEquals(0.5, std, 0.005);
        }
    }

    @Test
    void aFailedLaunchNamesTheCallTheKernelAndTheDriversError() {
        CudaDevice d = Gpu.device();
        try (DeviceTensor t = d.allocate(DType.F32, 4); DeviceTensor o = d.allocate(DType.BF16, 4)) {
            var e = assertThrows(CudaException.class,
                    () -> d.kernel("kernels", "convert_f32_to_bf16").launch(1, 4096, t, o, 4L));
            assertTrue(e.getMessage().startsWith("cuLaunchKernel(convert_f32_to_bf16"), e.getMessage());
            assertEquals("CUDA_ERROR_INVALID_VALUE", e.errorName(), e.getMessage());
        }
        d.synchronize();
    }

    @Test
    void aMissingKernelIsNamedInTheError() {
        CudaDevice d = Gpu.device();
        var e = assertThrows(CudaException.class, () -> d.kernel("kernels", "no_such_kernel"));
        assertTrue(e.getMessage().contains("no_such_kernel"), e.getMessage());
        assertEquals("CUDA_ERROR_NOT_FOUND", e.errorName());
    }

    @Test
    void aClosedTensorCannotBeUsed() {
        CudaDevice d = Gpu.device();
        DeviceTensor t = d.allocate(DType.F32, 3);
        t.close();
        assertThrows(IllegalStateException.class, t::address);
    }
}
