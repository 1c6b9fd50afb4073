package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

/**
 * One GPU: its primary context, one stream on which every copy, kernel and cuBLAS call of this device is ordered,
 * the kernels moe4j ships (PTX compiled by the driver when first used) and a cuBLAS handle. Device memory comes
 * from the driver's stream-ordered pool, so allocations inside a forward pass cost little.
 *
 * <p>Use a device from one thread at a time; a thread other than the opening one calls {@link #makeCurrent()}
 * first.
 */
public final class CudaDevice implements AutoCloseable {
    private final Driver driver;
    private final int ordinal;
    private final int device;
    private final MemorySegment context;
    private final MemorySegment stream;
    private final Map<String, MemorySegment> modules = new HashMap<>();
    private final Map<String, Kernel> kernels = new HashMap<>();
    private Blas blas;
    private boolean closed;

    private CudaDevice(Driver driver, int ordinal) {
        this.driver = driver;
        this.ordinal = ordinal;
        this.device = driver.device(ordinal);
        this.context = driver.retainPrimaryContext(device);
        driver.setCurrent(context);
        driver.keepPoolMemory(device);
        this.stream = driver.createStream();
    }

    static CudaDevice open(Driver driver, int ordinal) {
        int count = driver.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("GPU " + ordinal + " does not exist; the driver sees " + count);
        }
        return new CudaDevice(driver, ordinal);
    }

    Driver driver() {
        return driver;
    }

    MemorySegment stream() {
        return stream;
    }

    /** Makes this device's context current on the calling thread. */
    public void makeCurrent() {
        driver.setCurrent(context);
    }

    public int ordinal() {
        return ordinal;
    }

    public String name() {
        return driver.deviceName(device);
    }

    /** Compute capability as major·10 + minor (90 for Hopper). */
    public int computeCapability() {
        return driver.attribute(device, Driver.ATTRIBUTE_CC_MAJOR) * 10 + driver.attribute(device, Driver.ATTRIBUTE_CC_MINOR);
    }

    public int multiprocessors() {
        return driver.attribute(device, Driver.ATTRIBUTE_MULTIPROCESSOR_COUNT);
    }

    public long totalMemory() {
        return driver.totalMemory(device);
    }

    public long freeMemory() {
        return driver.memoryInfo()[0];
    }

    /** The memory bandwidth the device's clock and bus width imply (bytes/s); the datasheet's figure, not a measure. */
    public double nominalBandwidth() {
        double khz = driver.attribute(device, Driver.ATTRIBUTE_MEMORY_CLOCK_KHZ);
        double bits = driver.attribute(device, Driver.ATTRIBUTE_MEMORY_BUS_BITS);
        return 2 * khz * 1e3 * bits / 8;
    }

    /** One line: name, compute capability, memory, driver. */
    public String describe() {
        return String.format("%s (sm_%d, %d SMs, %.1f GiB), CUDA driver %s", name(), computeCapability(),
                multiprocessors(), totalMemory() / (double) (1L << 30), Cuda.driverVersion());
    }

    /** Waits until everything queued on this device's stream has run; a kernel's fault surfaces here. */
    public void synchronize() {
        driver.synchronize(stream);
    }

    // ---- memory ----

    /** Uninitialised device memory for a tensor of this dtype and shape. */
    public DeviceTensor allocate(DType dtype, int... shape) {
        long bytes = dtype.byteCount(Tensor.elementCount(shape));
        return new DeviceTensor(this, dtype, shape.clone(), driver.allocate(bytes, stream), bytes, true);
    }

    /** Device memory of zeros. */
    public DeviceTensor zeros(DType dtype, int... shape) {
        DeviceTensor t = allocate(dtype, shape);
        t.fillZero();
        return t;
    }

    /** A device copy of a host tensor, in the host tensor's dtype. */
    public DeviceTensor upload(Tensor host) {
        DeviceTensor t = allocate(host.dtype(), host.shape());
        t.copyFrom(host);
        return t;
    }

    /** A device copy of a host tensor converted to {@code dtype} (on the host) first. */
    public DeviceTensor upload(Tensor host, DType dtype) {
        return upload(host.dtype() == dtype ? host : host.to(dtype));
    }

    // ---- kernels and libraries ----

    /** cuBLAS on this device's stream (created on first use). */
    public Blas blas() {
        if (blas == null) {
            blas = new Blas(this, Cublas.load());
        }
        return blas;
    }

    /** The kernel {@code name} of the PTX module resource {@code module} (dev/moe4j/cuda/&lt;module&gt;.ptx). */
    public Kernel kernel(String module, String name) {
        return kernels.computeIfAbsent(module + "/" + name, key -> new Kernel(this, driver.function(module(module), name), name));
    }

    private MemorySegment module(String module) {
        return modules.computeIfAbsent(module, m -> {
            String resource = "/dev/moe4j/cuda/" + m + ".ptx";
            try (InputStream in = CudaDevice.class.getResourceAsStream(resource)) {
                if (in == null) {
                    throw new IllegalStateException("kernel module " + resource + " is missing from the jar");
                }
                byte[] ptx = in.readAllBytes();
                MemorySegment image = Arena.global().allocate(ptx.length + 1L);
                MemorySegment.copy(MemorySegment.ofArray(ptx), 0, image, 0, ptx.length);
                return driver.loadModule(image, m);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** A point in this device's stream that can be timed against another ({@link Event#millisSince}). */
    public Event record() {
        Event e = new Event(driver, driver.createEvent());
        driver.record(e.handle(), stream);
        return e;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        makeCurrent();
        driver.synchronize(stream);
        if (blas != null) {
            blas.close();
        }
        driver.destroyStream(stream);
        driver.releasePrimaryContext(device);
    }

    /** A recorded point of the stream. */
    public static final class Event implements AutoCloseable {
        private final Driver driver;
        private final MemorySegment handle;

        private Event(Driver driver, MemorySegment handle) {
            this.driver = driver;
            this.handle = handle;
        }

        MemorySegment handle() {
            return handle;
        }

        /** Milliseconds of device time from {@code start} to this event; waits for this event. */
        public double millisSince(Event start) {
            driver.synchronizeEvent(handle);
            return driver.elapsedMillis(start.handle, handle);
        }

        @Override
        public void close() {
            driver.destroyEvent(handle);
        }
    }
}
