package dev.moe4j.cuda;

import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** What a machine without a GPU (CI) sees: an answer, not a crash. */
class CudaAvailabilityTest {
    @Test
    void askingForTheGpuWithoutADriverIsOneLineNamingTheOptionAndTheReason() {
        assumeFalse(Cuda.available(), "a GPU is present");
        var e = assertThrows(BadInputException.class, () -> Cuda.require("--device cuda", Precision.BF16));
        assertTrue(e.getMessage().startsWith("--device cuda: no usable NVIDIA GPU: "), e.getMessage());
        assertTrue(e.getMessage().contains("libcuda"), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), e.getMessage());
        assertNotNull(Cuda.unavailableReason());
    }

    @Test
    void aLibraryFoundNowhereIsReportedWithEveryNameTried() {
        var e = assertThrows(IllegalStateException.class,
                () -> NativeLibrary.open("the test library", List.of("libmoe4j-absent.so.7", "/nonexistent/libx.so")));
        assertTrue(e.getMessage().startsWith("the test library not found"), e.getMessage());
        assertTrue(e.getMessage().contains("libmoe4j-absent.so.7"), e.getMessage());
    }

    @Test
    void theKernelModuleShipsInTheJar() {
        assertNotNull(CudaDevice.class.getResource("/dev/moe4j/cuda/kernels.ptx"));
    }

    @Test
    void theAttentionModuleHasEveryEntryPointInBothPrecisions() throws java.io.IOException {
        String ptx;
        try (var in = CudaDevice.class.getResourceAsStream("/dev/moe4j/cuda/attention.ptx")) {
            assertNotNull(in, "attention.ptx");
            ptx = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII);
        }
        for (String kernel : List.of("attention_forward", "attention_backward_prepare", "attention_backward_dq",
                "attention_backward_dkdv")) {
            for (String name : List.of(kernel, kernel + "_f32")) {
                assertTrue(ptx.contains(".entry " + name + "("), name + " in attention.ptx (rebuild it with "
                        + "scripts/cuda/build-kernels.sh)");
            }
        }
    }

    @Test
    void aPrecisionIsBf16OrF32AndAnythingElseIsOneLine() {
        assertEquals(Precision.BF16, Precision.parse("--precision", "bf16"));
        assertEquals(Precision.F32, Precision.parse("--precision", "F32"));
        assertEquals("f32", Precision.F32.label());
        var e = assertThrows(BadInputException.class, () -> Precision.parse("--precision", "tf32"));
        assertEquals("--precision: expected bf16 or f32, got 'tf32'", e.getMessage());
    }
}
