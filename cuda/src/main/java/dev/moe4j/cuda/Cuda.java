package dev.moe4j.cuda;

import dev.moe4j.core.BadInputException;

import java.util.EnumMap;
import java.util.Map;

/**
 * Whether this machine can run moe4j on an NVIDIA GPU, and the way in: {@link #open} gives a {@link CudaDevice}.
 * Nothing here needs a GPU to load; the driver is looked for on first use, and its absence is an answer
 * ({@link #available()} false, with {@link #unavailableReason()}), not an error.
 */
public final class Cuda {
    private static Driver driver;
    private static String failure;
    private static boolean probed;
    private static final Map<Precision, CudaDevice> shared = new EnumMap<>(Precision.class);

    private Cuda() {
    }

    /** The driver, loaded and initialised once; throws with the reason when there is none. */
    static synchronized Driver driver() {
        probe();
        if (driver == null) {
            throw new IllegalStateException(failure);
        }
        return driver;
    }

    private static void probe() {
        if (probed) {
            return;
        }
        probed = true;
        try {
            Driver d = Driver.load();
            if (d.deviceCount() == 0) {
                failure = "the CUDA driver (" + d.file() + ") reports no GPU";
                return;
            }
            driver = d;
        } catch (RuntimeException | LinkageError e) {
            failure = e.getMessage() == null ? e.toString() : e.getMessage();
        }
    }

    /** True when the CUDA driver loads and sees at least one GPU. */
    public static synchronized boolean available() {
        probe();
        return driver != null;
    }

    /** Why {@link #available()} is false (null when it is true). */
    public static synchronized String unavailableReason() {
        probe();
        return failure;
    }

    /** Number of GPUs the driver sees (0 without a driver). */
    public static int deviceCount() {
        return available() ? driver().deviceCount() : 0;
    }

    /** The driver's CUDA version as major.minor (e.g. "13.0"). */
    public static String driverVersion() {
        int v = driver().driverVersion();
        return v / 1000 + "." + (v % 1000) / 10;
    }

    /** Opens GPU {@code ordinal} in BF16, the default precision: its primary context, a stream and (on first use) cuBLAS. */
    public static CudaDevice open(int ordinal) {
        return open(ordinal, Precision.BF16);
    }

    /** Opens GPU {@code ordinal} computing in {@code precision}. */
    public static CudaDevice open(int ordinal, Precision precision) {
        return CudaDevice.open(driver(), ordinal, precision);
    }

    /**
     * The user asked for the GPU ({@code --device cuda}) in {@code precision}: GPU 0, opened once per precision for
     * the process (the commands share it), or says in one line why there is none.
     */
    public static synchronized CudaDevice require(String option, Precision precision) {
        if (!available()) {
            throw new BadInputException(option + ": no usable NVIDIA GPU: " + unavailableReason()
                    + " (install the NVIDIA driver, or leave out " + option + " to run on the CPU)");
        }
        CudaDevice device = shared.computeIfAbsent(precision, p -> open(0, p));
        device.makeCurrent();
        return device;
    }
}
