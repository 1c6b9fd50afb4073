package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CapturedWork;
import dev.moe4j.core.backend.Device;
import dev.moe4j.core.backend.MemoryScope;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * One GPU as a {@link Device}: its primary context, one stream on which every copy, kernel and cuBLAS call of this
 * device is ordered, the kernels moe4j ships (PTX compiled by the driver when first used), a cuBLAS handle and the
 * {@link CudaBackend} that computes on its tensors. Device memory comes from the driver's stream-ordered pool, so
 * allocations inside a forward pass cost little; an allocation belongs to the {@link MemoryScope} open when it is
 * made, or, with none open, stays until {@link #free}.
 *
 * <p>A device is opened with a {@link Precision}, and its backend computes in it: the tensors made on the device
 * carry it to every operation through {@link dev.moe4j.core.Tensor#device()}, so nothing else needs telling. One GPU
 * may be opened in both precisions at once (each with its own stream); tensors of the two are on different devices
 * and do not mix.
 *
 * <p>Use a device from one thread at a time; a thread other than the opening one calls {@link #makeCurrent()}
 * first.
 */
public final class CudaDevice implements Device, AutoCloseable {
    /** Bytes of page-locked memory that small uploads (indices, positions, gate weights) pass through. */
    private static final long STAGING_BYTES = 8L << 20;
    private final Driver driver;
    private final int ordinal;
    private final Precision precision;
    private final int device;
    private final MemorySegment context;
    private final MemorySegment stream;
    private final Map<String, MemorySegment> modules = new HashMap<>();
    private final Map<String, Kernel> kernels = new HashMap<>();
    private Blas blas;
    private final CudaBackend backend;
    /** Allocations no scope owns, start → end: weights, caches, gradients of parameters. */
    private final NavigableMap<Long, Long> persistent = new TreeMap<>();
    private MemorySegment staging;
    private long stagingUsed;
    /** Freed small blocks by size, reused before asking the driver: a decoding step allocates hundreds. */
    private final Map<Long, java.util.ArrayDeque<Long>> freeBlocks = new HashMap<>();
    private final int multiprocessorCount;
    private boolean closed;

    private CudaDevice(Driver driver, int ordinal, Precision precision) {
        this.driver = driver;
        this.ordinal = ordinal;
        this.precision = precision;
        this.device = driver.device(ordinal);
        this.context = driver.retainPrimaryContext(device);
        driver.setCurrent(context);
        driver.keepPoolMemory(device);
        this.stream = driver.createStream();
        this.backend = new CudaBackend(this);
        this.multiprocessorCount = driver.attribute(device, Driver.ATTRIBUTE_MULTIPROCESSOR_COUNT);
    }

    static CudaDevice open(Driver driver, int ordinal, Precision precision) {
        int count = driver.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("GPU " + ordinal + " does not exist; the driver sees " + count);
        }
        return new CudaDevice(driver, ordinal, precision);
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

    @Override
    public void attach() {
        makeCurrent();
    }

    public int ordinal() {
        return ordinal;
    }

    /** How this device's backend computes. */
    public Precision precision() {
        return precision;
    }

    /** "cuda:" and the ordinal, as messages name the device, with " (f32)" when it computes in F32. */
    @Override
    public String name() {
        return "cuda:" + ordinal + (precision == Precision.BF16 ? "" : " (" + precision.label() + ")");
    }

    @Override
    public CudaBackend backend() {
        return backend;
    }

    /** The GPU's product name, e.g. "NVIDIA H100 80GB HBM3". */
    public String productName() {
        return driver.deviceName(device);
    }

    /** Compute capability as major·10 + minor (90 for Hopper). */
    public int computeCapability() {
        return driver.attribute(device, Driver.ATTRIBUTE_CC_MAJOR) * 10 + driver.attribute(device, Driver.ATTRIBUTE_CC_MINOR);
    }

    public int multiprocessors() {
        return multiprocessorCount;
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
        return String.format("%s (sm_%d, %d SMs, %.1f GiB), CUDA driver %s", productName(), computeCapability(),
                multiprocessors(), totalMemory() / (double) (1L << 30), Cuda.driverVersion());
    }

    /** Waits until everything queued on this device's stream has run; a kernel's fault surfaces here. */
    public void synchronize() {
        refuseWhileCapturing("waits for the device");
        driver.synchronize(stream);
    }

    // ---- memory ----

    /**
     * Uninitialised device memory for a tensor of this dtype and shape, released by the {@link MemoryScope} open on
     * this thread, or kept until {@link #free} when none is.
     */
    public Tensor allocate(DType dtype, int... shape) {
        long bytes = dtype.byteCount(Tensor.elementCount(shape));
        if (capturing != null) {
            return Tensor.onDevice(this, dtype, capturing.allocate(bytes), shape);
        }
        if (MemoryScope.active() && bytes <= SMALL_BLOCK) {
            // A scope's small blocks go back to a free list by rounded size; the stream orders every use of a block
            // before its reuse, so no synchronisation is needed.
            long size = Math.max(256, (bytes + 255) & ~255L);
            var blocks = freeBlocks.computeIfAbsent(size, k -> new java.util.ArrayDeque<>());
            Long reused = blocks.poll();
            long address = reused != null ? reused : driver.allocate(size, stream);
            MemoryScope.adopt(() -> blocks.push(address));
            return Tensor.onDevice(this, dtype, address, shape);
        }
        long address = driver.allocate(bytes, stream);
        if (!MemoryScope.adopt(() -> driver.free(address, stream))) {
            persistent.put(address, address + Math.max(bytes, 1));
        }
        return Tensor.onDevice(this, dtype, address, shape);
    }

    /** Blocks up to this size that a scope frees are kept for reuse. */
    private static final long SMALL_BLOCK = 1L << 20;

    /** Device memory of zeros. */
    public Tensor zeros(DType dtype, int... shape) {
        Tensor t = allocate(dtype, shape);
        driver.fillBytes(t.address(), (byte) 0, t.byteSize(), stream);
        return t;
    }

    /** Releases a tensor allocated while no scope was open (ordered on the stream: queued work still sees it). */
    @Override
    public void free(Tensor t) {
        Long end = persistent.remove(t.address());
        if (end == null) {
            throw new IllegalArgumentException(t + " is not an allocation of its own on " + name()
                    + " (a view, or owned by a memory scope)");
        }
        driver.free(t.address(), stream);
    }

    /** True when the address lies in memory no scope owns (so a copy made of it may be reused within a scope). */
    boolean isPersistent(long address) {
        var e = persistent.floorEntry(address);
        return e != null && address < e.getValue();
    }

    /** A device copy of a host tensor, in the host tensor's dtype. */
    public Tensor upload(Tensor host) {
        Tensor t = allocate(host.dtype(), host.shape());
        copyToDevice(t, host.segment());
        return t;
    }

    /** A device copy of a host tensor converted to {@code dtype} (on the host) first. */
    public Tensor upload(Tensor host, DType dtype) {
        return upload(host.dtype() == dtype ? host : host.to(dtype));
    }

    /**
     * Copies host memory (heap, mapped or native) to a device tensor, ordered on the stream. Small copies go
     * through page-locked staging memory and do not wait for the device; large ones are synchronous.
     */
    void copyToDevice(Tensor dst, MemorySegment src) {
        refuseWhileCapturing("copies host memory to the device");
        long bytes = dst.byteSize();
        if (src.byteSize() != bytes) {
            throw new IllegalArgumentException(src.byteSize() + " host bytes for " + dst);
        }
        if (bytes == 0) {
            return;
        }
        if (bytes > STAGING_BYTES / 4) {
            driver.synchronize(stream);
            driver.copyToDevice(dst.address(), src, bytes);
            return;
        }
        if (staging == null) {
            staging = driver.allocatePinned(STAGING_BYTES);
        }
        if (stagingUsed + bytes > STAGING_BYTES) {
            driver.synchronize(stream); // every earlier staged copy has been read: the buffer is free again
            stagingUsed = 0;
        }
        MemorySegment slot = staging.asSlice(stagingUsed, bytes);
        MemorySegment.copy(src, 0, slot, 0, bytes);
        driver.copyToDeviceAsync(dst.address(), slot, bytes, stream);
        stagingUsed = (stagingUsed + bytes + 255) & ~255L;
    }

    /** Copies a device tensor into host memory of its size, after everything queued before it (waits). */
    void copyToHost(MemorySegment dst, Tensor src) {
        refuseWhileCapturing("copies device memory to the host");
        driver.synchronize(stream);
        driver.copyToHost(dst, src.address(), src.byteSize());
    }

    /** Device-to-device copy of equal byte sizes, ordered on the stream. */
    void copyOnDevice(Tensor dst, Tensor src) {
        driver.copyOnDevice(dst.address(), src.address(), src.byteSize(), stream);
    }

    void fillBytes(Tensor t, byte value) {
        driver.fillBytes(t.address(), value, t.byteSize(), stream);
    }

    void fillInts(Tensor t, int value) {
        driver.fillInts(t.address(), value, t.size(), stream);
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

    // ---- recorded work (CUDA graphs) ----

    /** Set {@code -Dmoe4j.cuda.graphs=false} to run every decoding step by direct launches (to measure what graphs gain). */
    private static final boolean GRAPHS = !"false".equals(System.getProperty("moe4j.cuda.graphs"));
    /** The recording under way on this device's stream, or null. */
    private Capture capturing;

    @Override
    public boolean captures() {
        return GRAPHS;
    }

    /**
     * Records the step's launches and device copies as a CUDA graph (stream capture). A host-memory copy or a wait
     * inside the step could not be replayed as it ran, so they end the recording and the answer is null; so does a
     * call the driver refuses to record. The step's allocations come from memory the recording owns, at addresses
     * that stay while it lives, and its memory scope's frees return them to the recording for its later allocations,
     * as the stream orders them (a graph captured from one stream runs its nodes in the same order).
     */
    @Override
    public CapturedWork capture(Runnable step) {
        if (!GRAPHS || capturing != null) {
            return null;
        }
        var recording = new Capture();
        boolean recorded = false;
        MemorySegment graph = null;
        capturing = recording;
        driver.beginCapture(stream);
        try {
            try (var scope = MemoryScope.open()) {
                step.run();
            }
            recorded = true;
        } catch (CaptureRefused | CudaException e) {
            // nothing ran: the caller runs the step directly
        } finally {
            capturing = null;
            try {
                graph = driver.endCapture(stream);
            } catch (CudaException e) {
                recorded = false; // the driver invalidated the capture (a call it cannot record)
            }
        }
        try {
            if (!recorded) {
                return null;
            }
            recording.exec = driver.instantiate(graph);
            return recording;
        } finally {
            if (graph != null && !graph.equals(MemorySegment.NULL)) {
                driver.destroyGraph(graph);
            }
            if (recording.exec == null) {
                recording.close();
            }
        }
    }

    private void refuseWhileCapturing(String what) {
        if (capturing != null) {
            throw new CaptureRefused("a recorded step " + what);
        }
    }

    /** What ends a recording that the step's work cannot be replayed from. */
    private static final class CaptureRefused extends RuntimeException {
        CaptureRefused(String message) {
            super(message, null, false, false);
        }
    }

    /** A recorded step: its instantiated graph and the device memory its work uses, in chunks carved by size. */
    private final class Capture implements CapturedWork {
        private static final long CHUNK = 8L << 20;
        private final java.util.List<Long> chunks = new java.util.ArrayList<>();
        private final Map<Long, java.util.ArrayDeque<Long>> free = new HashMap<>();
        private long chunkEnd, next;
        private MemorySegment exec;
        private boolean closed;

        long allocate(long bytes) {
            if (!MemoryScope.active()) {
                // persistent memory (a table kept for later passes) cannot live in a recording's chunks
                throw new CaptureRefused("a recorded step allocates memory that outlives it");
            }
            long size = Math.max(256, (bytes + 255) & ~255L);
            var blocks = free.computeIfAbsent(size, k -> new java.util.ArrayDeque<>());
            Long reused = blocks.poll();
            long address;
            if (reused != null) {
                address = reused;
            } else {
                if (next + size > chunkEnd) {
                    long chunk = Math.max(CHUNK, size);
                    next = driver.allocateFixed(chunk);
                    chunks.add(next);
                    chunkEnd = next + chunk;
                }
                address = next;
                next += size;
            }
            MemoryScope.adopt(() -> blocks.push(address));
            return address;
        }

        @Override
        public void replay() {
            if (closed) {
                throw new IllegalStateException("a closed recording cannot be replayed");
            }
            driver.launchGraph(exec, stream);
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            driver.synchronize(stream); // replays queued before may still use the memory
            if (exec != null) {
                driver.destroyGraphExec(exec);
            }
            chunks.forEach(driver::freeFixed);
            chunks.clear();
        }
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
        if (staging != null) {
            driver.freePinned(staging);
        }
        freeBlocks.values().forEach(blocks -> blocks.forEach(address -> driver.free(address, stream)));
        freeBlocks.clear();
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
