package dev.moe4j.cuda;

import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** What a machine without a GPU (CI) sees: an answer, not a crash. */
class CudaAvailabilityTest {
    @Test
    void askingForTheGpuWithoutADriverIsOneLineNamingTheOptionAndTheReason() {
        assumeFalse(Cuda.available(), "a GPU is present");
        var e = assertThrows(BadInputException.class, () -> Cuda.require("--device cuda"));
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
}
