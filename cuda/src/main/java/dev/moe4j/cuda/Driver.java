package dev.moe4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The CUDA driver API (libcuda) through FFM: the calls moe4j needs, each checked, a failure turned into a
 * {@link CudaException} that names the call and the driver's name for the error. Handles (contexts, streams,
 * modules, functions, events) are opaque pointers; device addresses are longs.
 *
 * <p>Symbols are bound by the names cuda.h maps its API to ({@code cuMemAlloc_v2}, {@code cuEventElapsedTime_v2},
 * ...), the ABI every driver since the one named keeps.
 */
final class Driver {
    /** CU_DEVICE_ATTRIBUTE_* values used here. */
    static final int ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    static final int ATTRIBUTE_MEMORY_CLOCK_KHZ = 36;
    static final int ATTRIBUTE_MEMORY_BUS_BITS = 37;
    static final int ATTRIBUTE_L2_BYTES = 38;
    static final int ATTRIBUTE_CC_MAJOR = 75;
    static final int ATTRIBUTE_CC_MINOR = 76;
    static final int ATTRIBUTE_SHARED_PER_BLOCK_OPTIN = 97;
    static final int FUNCTION_ATTRIBUTE_MAX_DYNAMIC_SHARED = 8;
    private static final int MEMPOOL_ATTR_RELEASE_THRESHOLD = 4;
    private static final int JIT_ERROR_LOG_BUFFER = 5;
    private static final int JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

    private final NativeLibrary library;
    private final MethodHandle cuInit, cuDriverGetVersion, cuGetErrorName, cuGetErrorString;
    private final MethodHandle cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute, cuDeviceTotalMem;
    private final MethodHandle cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize;
    private final MethodHandle cuMemGetInfo, cuMemAllocAsync, cuMemFreeAsync, cuDeviceGetDefaultMemPool, cuMemPoolSetAttribute;
    private final MethodHandle cuMemcpyHtoD, cuMemcpyDtoH, cuMemcpyDtoDAsync, cuMemcpyHtoDAsync;
    private final MethodHandle cuMemsetD8Async, cuMemsetD32Async, cuMemAllocHost, cuMemFreeHost;
    private final MethodHandle cuStreamCreate, cuStreamDestroy, cuStreamSynchronize;
    private final MethodHandle cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy;
    private final MethodHandle cuModuleLoadDataEx, cuModuleGetFunction, cuFuncSetAttribute, cuLaunchKernel;
    private final MethodHandle cuMemAlloc, cuMemFree;
    private final MethodHandle cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch;
    private final MethodHandle cuGraphDestroy, cuGraphExecDestroy;
    /** CU_STREAM_CAPTURE_MODE_RELAXED: a capture may allocate its scratch memory (cuMemAlloc) while it records. */
    private static final int CAPTURE_MODE_RELAXED = 2;

    private Driver(NativeLibrary lib) {
        library = lib;
        cuInit = lib.function("cuInit", JAVA_INT, JAVA_INT);
        cuDriverGetVersion = lib.function("cuDriverGetVersion", JAVA_INT, ADDRESS);
        cuGetErrorName = lib.function("cuGetErrorName", JAVA_INT, JAVA_INT, ADDRESS);
        cuGetErrorString = lib.function("cuGetErrorString", JAVA_INT, JAVA_INT, ADDRESS);
        cuDeviceGetCount = lib.function("cuDeviceGetCount", JAVA_INT, ADDRESS);
        cuDeviceGet = lib.function("cuDeviceGet", JAVA_INT, ADDRESS, JAVA_INT);
        cuDeviceGetName = lib.function("cuDeviceGetName", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetAttribute = lib.function("cuDeviceGetAttribute", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceTotalMem = lib.function("cuDeviceTotalMem_v2", JAVA_INT, ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRetain = lib.function("cuDevicePrimaryCtxRetain", JAVA_INT, ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRelease = lib.function("cuDevicePrimaryCtxRelease_v2", JAVA_INT, JAVA_INT);
        cuCtxSetCurrent = lib.function("cuCtxSetCurrent", JAVA_INT, ADDRESS);
        cuCtxSynchronize = lib.function("cuCtxSynchronize", JAVA_INT);
        cuMemGetInfo = lib.function("cuMemGetInfo_v2", JAVA_INT, ADDRESS, ADDRESS);
        cuMemAllocAsync = lib.function("cuMemAllocAsync", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        cuMemFreeAsync = lib.function("cuMemFreeAsync", JAVA_INT, JAVA_LONG, ADDRESS);
        cuDeviceGetDefaultMemPool = lib.function("cuDeviceGetDefaultMemPool", JAVA_INT, ADDRESS, JAVA_INT);
        cuMemPoolSetAttribute = lib.function("cuMemPoolSetAttribute", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        // Synchronous copies may read or write Java heap arrays directly: the call runs as a critical function,
        // with the garbage collector held off until it returns.
        var critical = Linker.Option.critical(true);
        cuMemcpyHtoD = lib.function("cuMemcpyHtoD_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG), critical);
        cuMemcpyDtoH = lib.function("cuMemcpyDtoH_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), critical);
        cuMemcpyDtoDAsync = lib.function("cuMemcpyDtoDAsync_v2", JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemcpyHtoDAsync = lib.function("cuMemcpyHtoDAsync_v2", JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
        cuMemAllocHost = lib.function("cuMemAllocHost_v2", JAVA_INT, ADDRESS, JAVA_LONG);
        cuMemFreeHost = lib.function("cuMemFreeHost", JAVA_INT, ADDRESS);
        cuMemsetD8Async = lib.function("cuMemsetD8Async", JAVA_INT, JAVA_LONG, JAVA_BYTE, JAVA_LONG, ADDRESS);
        cuMemsetD32Async = lib.function("cuMemsetD32Async", JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS);
        cuStreamCreate = lib.function("cuStreamCreate", JAVA_INT, ADDRESS, JAVA_INT);
        cuStreamDestroy = lib.function("cuStreamDestroy_v2", JAVA_INT, ADDRESS);
        cuStreamSynchronize = lib.function("cuStreamSynchronize", JAVA_INT, ADDRESS);
        cuEventCreate = lib.function("cuEventCreate", JAVA_INT, ADDRESS, JAVA_INT);
        cuEventRecord = lib.function("cuEventRecord", JAVA_INT, ADDRESS, ADDRESS);
        cuEventSynchronize = lib.function("cuEventSynchronize", JAVA_INT, ADDRESS);
        cuEventElapsedTime = lib.has("cuEventElapsedTime_v2")
                ? lib.function("cuEventElapsedTime_v2", JAVA_INT, ADDRESS, ADDRESS, ADDRESS)
                : lib.function("cuEventElapsedTime", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuEventDestroy = lib.function("cuEventDestroy_v2", JAVA_INT, ADDRESS);
        cuModuleLoadDataEx = lib.function("cuModuleLoadDataEx", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        cuModuleGetFunction = lib.function("cuModuleGetFunction", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuFuncSetAttribute = lib.function("cuFuncSetAttribute", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
        cuLaunchKernel = lib.function("cuLaunchKernel", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuMemAlloc = lib.function("cuMemAlloc_v2", JAVA_INT, ADDRESS, JAVA_LONG);
        cuMemFree = lib.function("cuMemFree_v2", JAVA_INT, JAVA_LONG);
        cuStreamBeginCapture = lib.function("cuStreamBeginCapture_v2", JAVA_INT, ADDRESS, JAVA_INT);
        cuStreamEndCapture = lib.function("cuStreamEndCapture", JAVA_INT, ADDRESS, ADDRESS);
        cuGraphInstantiate = lib.function("cuGraphInstantiateWithFlags", JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG);
        cuGraphLaunch = lib.function("cuGraphLaunch", JAVA_INT, ADDRESS, ADDRESS);
        cuGraphDestroy = lib.function("cuGraphDestroy", JAVA_INT, ADDRESS);
        cuGraphExecDestroy = lib.function("cuGraphExecDestroy", JAVA_INT, ADDRESS);
    }

    /** Opens libcuda (the soname the dynamic linker knows, then where drivers usually put it) and calls cuInit. */
    static Driver load() {
        var candidates = new ArrayList<String>();
        String override = System.getenv("MOE4J_LIBCUDA");
        if (override != null && !override.isBlank()) {
            candidates.add(override);
        }
        candidates.addAll(List.of("libcuda.so.1", "libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                "/usr/lib64/libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1"));
        Driver d = new Driver(NativeLibrary.open("the CUDA driver (libcuda.so.1)", candidates));
        d.check("cuInit", d.invokeInt(d.cuInit, 0));
        return d;
    }

    String file() {
        return library.file();
    }

    // ---- errors ----

    void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call, status, errorName(status), errorString(status));
        }
    }

    String errorName(int status) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int r = (int) cuGetErrorName.invokeExact(status, out);
            return r == 0 ? NativeLibrary.cString(out.get(ADDRESS, 0)) : "CUDA_ERROR_" + status;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private String errorString(int status) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int r = (int) cuGetErrorString.invokeExact(status, out);
            return r == 0 ? NativeLibrary.cString(out.get(ADDRESS, 0)) : "";
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- devices and contexts ----

    int driverVersion() {
        return intOut("cuDriverGetVersion", cuDriverGetVersion);
    }

    int deviceCount() {
        return intOut("cuDeviceGetCount", cuDeviceGetCount);
    }

    int device(int ordinal) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check("cuDeviceGet", (int) cuDeviceGet.invokeExact(out, ordinal));
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    String deviceName(int device) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(256);
            check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(out, 256, device));
            return out.getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int attribute(int device, int attribute) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check("cuDeviceGetAttribute", (int) cuDeviceGetAttribute.invokeExact(out, attribute, device));
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    long totalMemory(int device) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check("cuDeviceTotalMem_v2", (int) cuDeviceTotalMem.invokeExact(out, device));
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment retainPrimaryContext(int device) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuDevicePrimaryCtxRetain", (int) cuDevicePrimaryCtxRetain.invokeExact(out, device));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void releasePrimaryContext(int device) {
        check("cuDevicePrimaryCtxRelease_v2", invokeInt(cuDevicePrimaryCtxRelease, device));
    }

    void setCurrent(MemorySegment context) {
        try {
            check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(context));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void synchronizeContext() {
        try {
            check("cuCtxSynchronize", (int) cuCtxSynchronize.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {free, total} bytes of device memory. */
    long[] memoryInfo() {
        try (var arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG), total = arena.allocate(JAVA_LONG);
            check("cuMemGetInfo_v2", (int) cuMemGetInfo.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Keeps freed memory in the device's default pool instead of handing it back at every synchronisation, so
     * that stream-ordered allocations of activations cost a pool lookup, not a mapping.
     */
    void keepPoolMemory(int device) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment pool = arena.allocate(ADDRESS);
            check("cuDeviceGetDefaultMemPool", (int) cuDeviceGetDefaultMemPool.invokeExact(pool, device));
            MemorySegment threshold = arena.allocate(JAVA_LONG);
            threshold.set(JAVA_LONG, 0, Long.MAX_VALUE);
            check("cuMemPoolSetAttribute", (int) cuMemPoolSetAttribute.invokeExact(pool.get(ADDRESS, 0),
                    MEMPOOL_ATTR_RELEASE_THRESHOLD, threshold));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- memory ----

    long allocate(long bytes, MemorySegment stream) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check("cuMemAllocAsync", (int) cuMemAllocAsync.invokeExact(out, Math.max(bytes, 1L), stream));
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void free(long address, MemorySegment stream) {
        try {
            check("cuMemFreeAsync", (int) cuMemFreeAsync.invokeExact(address, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Page-locked host memory of {@code bytes}, which the copy engine reads directly: what asynchronous uploads go
     * through.
     */
    MemorySegment allocatePinned(long bytes) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuMemAllocHost_v2", (int) cuMemAllocHost.invokeExact(out, bytes));
            return out.get(ADDRESS, 0).reinterpret(bytes);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void freePinned(MemorySegment pinned) {
        try {
            check("cuMemFreeHost", (int) cuMemFreeHost.invokeExact(pinned));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Host (heap or native) to device, synchronous. */
    void copyToDevice(long device, MemorySegment host, long bytes) {
        try {
            check("cuMemcpyHtoD_v2", (int) cuMemcpyHtoD.invokeExact(device, host, bytes));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Device to host (heap or native), synchronous. */
    void copyToHost(MemorySegment host, long device, long bytes) {
        try {
            check("cuMemcpyDtoH_v2", (int) cuMemcpyDtoH.invokeExact(host, device, bytes));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Host (native memory only) to device, ordered on the stream. */
    void copyToDeviceAsync(long device, MemorySegment host, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyHtoDAsync_v2", (int) cuMemcpyHtoDAsync.invokeExact(device, host, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void copyOnDevice(long to, long from, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoDAsync_v2", (int) cuMemcpyDtoDAsync.invokeExact(to, from, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void fillBytes(long address, byte value, long count, MemorySegment stream) {
        try {
            check("cuMemsetD8Async", (int) cuMemsetD8Async.invokeExact(address, value, count, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void fillInts(long address, int value, long count, MemorySegment stream) {
        try {
            check("cuMemsetD32Async", (int) cuMemsetD32Async.invokeExact(address, value, count, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- streams and events ----

    MemorySegment createStream() {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuStreamCreate", (int) cuStreamCreate.invokeExact(out, 0));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void destroyStream(MemorySegment stream) {
        try {
            check("cuStreamDestroy_v2", (int) cuStreamDestroy.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void synchronize(MemorySegment stream) {
        try {
            check("cuStreamSynchronize", (int) cuStreamSynchronize.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment createEvent() {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(out, 0));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void record(MemorySegment event, MemorySegment stream) {
        try {
            check("cuEventRecord", (int) cuEventRecord.invokeExact(event, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void synchronizeEvent(MemorySegment event) {
        try {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    float elapsedMillis(MemorySegment start, MemorySegment end) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_FLOAT);
            check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(out, start, end));
            return out.get(JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void destroyEvent(MemorySegment event) {
        try {
            check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- modules and launches ----

    /** Loads a PTX (NUL-terminated) or cubin image; a JIT failure carries the compiler's log. */
    MemorySegment loadModule(MemorySegment image, String name) {
        try (var arena = Arena.ofConfined()) {
            int logSize = 16 << 10;
            MemorySegment log = arena.allocate(logSize);
            MemorySegment options = arena.allocate(JAVA_INT, 2);
            options.setAtIndex(JAVA_INT, 0, JIT_ERROR_LOG_BUFFER);
            options.setAtIndex(JAVA_INT, 1, JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
            MemorySegment values = arena.allocate(ADDRESS, 2);
            values.setAtIndex(ADDRESS, 0, log);
            values.setAtIndex(ADDRESS, 1, MemorySegment.ofAddress(logSize));
            MemorySegment out = arena.allocate(ADDRESS);
            int status = (int) cuModuleLoadDataEx.invokeExact(out, image, 2, options, values);
            if (status != 0) {
                throw new CudaException("cuModuleLoadDataEx(" + name + ")", status, errorName(status), log.getString(0));
            }
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment function(MemorySegment module, String name) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int status = (int) cuModuleGetFunction.invokeExact(out, module, arena.allocateFrom(name));
            check("cuModuleGetFunction(" + name + ")", status);
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void setFunctionAttribute(MemorySegment function, int attribute, int value, String name) {
        try {
            check("cuFuncSetAttribute(" + name + ")", (int) cuFuncSetAttribute.invokeExact(function, attribute, value));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void launch(MemorySegment function, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes,
                MemorySegment stream, MemorySegment parameters, String name) {
        int status;
        try {
            status = (int) cuLaunchKernel.invokeExact(function, gx, gy, gz, bx, by, bz, sharedBytes, stream, parameters,
                    MemorySegment.NULL);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (status != 0) {
            throw new CudaException("cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block "
                    + bx + "x" + by + "x" + bz + ", shared " + sharedBytes + ")", status, errorName(status), errorString(status));
        }
    }

    // ---- graphs ----

    /** Device memory outside the stream-ordered pool: a capture's scratch, which must stay put while it records. */
    long allocateFixed(long bytes) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check("cuMemAlloc_v2", (int) cuMemAlloc.invokeExact(out, Math.max(bytes, 1L)));
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void freeFixed(long address) {
        try {
            check("cuMemFree_v2", (int) cuMemFree.invokeExact(address));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Starts recording the stream's work into a graph instead of running it (relaxed mode). */
    void beginCapture(MemorySegment stream) {
        try {
            check("cuStreamBeginCapture_v2", (int) cuStreamBeginCapture.invokeExact(stream, CAPTURE_MODE_RELAXED));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Ends the stream's recording: the graph, or the driver's status where the capture was invalidated (a call the
     * graph cannot hold was made on the stream); the stream runs work again either way.
     */
    MemorySegment endCapture(MemorySegment stream) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuStreamEndCapture", (int) cuStreamEndCapture.invokeExact(stream, out));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment instantiate(MemorySegment graph) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("cuGraphInstantiateWithFlags", (int) cuGraphInstantiate.invokeExact(out, graph, 0L));
            return out.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void launchGraph(MemorySegment exec, MemorySegment stream) {
        try {
            check("cuGraphLaunch", (int) cuGraphLaunch.invokeExact(exec, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void destroyGraph(MemorySegment graph) {
        try {
            check("cuGraphDestroy", (int) cuGraphDestroy.invokeExact(graph));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void destroyGraphExec(MemorySegment exec) {
        try {
            check("cuGraphExecDestroy", (int) cuGraphExecDestroy.invokeExact(exec));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- plumbing ----

    private int intOut(String call, MethodHandle handle) {
        try (var arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(call, (int) handle.invokeExact(out));
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private int invokeInt(MethodHandle handle, int argument) {
        try {
            return (int) handle.invokeExact(argument);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}
