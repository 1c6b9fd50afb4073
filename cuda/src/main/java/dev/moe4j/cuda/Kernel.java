package dev.moe4j.cuda;

import dev.moe4j.core.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A kernel of a loaded module, launched on its device's stream. Arguments map to C parameters by their Java type:
 * a device {@link Tensor} is its address (a pointer), null a null pointer, an Integer an {@code int}, a Long a
 * {@code long long} (or a raw device address), a Float a {@code float}.
 */
public final class Kernel {
    private final CudaDevice device;
    private final MemorySegment function;
    private final String name;
    private static final int MAX_ARGUMENTS = 32;
    private int dynamicSharedLimit = 48 << 10;
    // One buffer of argument values and one of pointers to them, reused by every launch: the driver copies the
    // arguments during cuLaunchKernel, and a device is used from one thread at a time.
    private final MemorySegment values = Arena.ofAuto().allocate(8L * MAX_ARGUMENTS, 8);
    private final MemorySegment pointers = Arena.ofAuto().allocate(ADDRESS, MAX_ARGUMENTS);

    Kernel(CudaDevice device, MemorySegment function, String name) {
        this.device = device;
        this.function = function;
        this.name = name;
        for (int i = 0; i < MAX_ARGUMENTS; i++) {
            pointers.setAtIndex(ADDRESS, i, values.asSlice(8L * i, 8));
        }
    }

    public String name() {
        return name;
    }

    /** Launches a grid of gridX blocks of blockX threads. */
    public void launch(int gridX, int blockX, Object... arguments) {
        launchGrid(gridX, 1, 1, blockX, 1, 1, 0, arguments);
    }

    /** Launches with a 3-d grid and block and dynamic shared memory, raising the kernel's shared limit if needed. */
    public void launchGrid(int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes,
                           Object... arguments) {
        if (gridX <= 0 || gridY <= 0 || gridZ <= 0) {
            return; // nothing to do: an empty grid is not an error here
        }
        if (sharedBytes > dynamicSharedLimit) {
            device.driver().setFunctionAttribute(function, Driver.FUNCTION_ATTRIBUTE_MAX_DYNAMIC_SHARED, sharedBytes, name);
            dynamicSharedLimit = sharedBytes;
        }
        if (arguments.length > MAX_ARGUMENTS) {
            throw new IllegalArgumentException(name + ": more than " + MAX_ARGUMENTS + " arguments");
        }
        for (int i = 0; i < arguments.length; i++) {
            long offset = 8L * i;
            switch (arguments[i]) {
                case null -> values.set(JAVA_LONG, offset, 0L);
                case Tensor t -> values.set(JAVA_LONG, offset, t.address());
                case Integer v -> values.set(JAVA_INT, offset, v);
                case Long v -> values.set(JAVA_LONG, offset, v);
                case Float v -> values.set(JAVA_FLOAT, offset, v);
                default -> throw new IllegalArgumentException(name + ": argument " + i + " of unsupported type "
                        + arguments[i].getClass().getSimpleName());
            }
        }
        device.driver().launch(function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, device.stream(),
                pointers, name);
    }
}
