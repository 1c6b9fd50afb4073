package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A row-major, contiguous tensor in GPU memory: the device counterpart of {@link Tensor} (shape, dtype, and a
 * device address instead of a segment). Views ({@link #slice}, {@link #select}, {@link #reshape}) share memory
 * with their source and free nothing; the tensor that allocated frees on {@link #close()}, ordered on the
 * device's stream, so work already queued on it still sees the memory.
 */
public final class DeviceTensor implements AutoCloseable {
    private final CudaDevice device;
    private final DType dtype;
    private final int[] shape;
    private final long address;
    private final long byteSize;
    private final boolean owner;
    private boolean closed;

    DeviceTensor(CudaDevice device, DType dtype, int[] shape, long address, long byteSize, boolean owner) {
        this.device = device;
        this.dtype = dtype;
        this.shape = shape;
        this.address = address;
        this.byteSize = byteSize;
        this.owner = owner;
    }

    public CudaDevice device() {
        return device;
    }

    public DType dtype() {
        return dtype;
    }

    /** A copy of the shape. */
    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int axis) {
        return shape[axis < 0 ? shape.length + axis : axis];
    }

    public long size() {
        return Tensor.elementCount(shape);
    }

    /** Length of the last axis. */
    public int cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    /** Product of every axis but the last. */
    public int rows() {
        return shape.length == 0 ? 1 : Math.toIntExact(size() / Math.max(1, cols()));
    }

    public long byteSize() {
        return byteSize;
    }

    /** The device address of the first element. */
    public long address() {
        check();
        return address;
    }

    public boolean hasShape(int... expected) {
        return Arrays.equals(shape, expected);
    }

    // ---- views ----

    /** The same memory under another shape of equal size. */
    public DeviceTensor reshape(int... newShape) {
        if (Tensor.elementCount(newShape) != size()) {
            throw new IllegalArgumentException("cannot reshape " + this + " to " + Arrays.toString(newShape));
        }
        return new DeviceTensor(device, dtype, newShape.clone(), address(), byteSize, false);
    }

    /** Rows [from, to) along the first axis, sharing memory. */
    public DeviceTensor slice(int from, int to) {
        if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
            throw new IndexOutOfBoundsException("slice [" + from + ", " + to + ") of " + this);
        }
        long stride = shape[0] == 0 ? 0 : byteSize / shape[0];
        int[] s = shape.clone();
        s[0] = to - from;
        return new DeviceTensor(device, dtype, s, address() + from * stride, (to - from) * stride, false);
    }

    /** Entry i along the first axis, with that axis removed. */
    public DeviceTensor select(int i) {
        DeviceTensor row = slice(i, i + 1);
        return new DeviceTensor(device, dtype, Arrays.copyOfRange(shape, 1, shape.length), row.address, row.byteSize, false);
    }

    /**
     * A view of part of this tensor's memory as another dtype and shape, from {@code byteOffset} (one allocation
     * carved into several tensors: a workspace costs one allocation and one free).
     */
    public DeviceTensor carve(long byteOffset, DType dtype, int... shape) {
        long bytes = dtype.byteCount(Tensor.elementCount(shape));
        if (byteOffset < 0 || byteOffset + bytes > byteSize) {
            throw new IndexOutOfBoundsException(bytes + " bytes at " + byteOffset + " outside " + this);
        }
        return new DeviceTensor(device, dtype, shape.clone(), address() + byteOffset, bytes, false);
    }

    // ---- copies ----

    /** Copies a host tensor of the same dtype and size into this one (synchronous). */
    public void copyFrom(Tensor host) {
        if (host.dtype() != dtype || host.size() != size()) {
            throw new IllegalArgumentException("copy of " + host + " into " + this);
        }
        device.driver().synchronize(device.stream());
        device.driver().copyToDevice(address(), host.segment(), byteSize);
    }

    /** Copies another device tensor of the same dtype and size into this one, ordered on the stream. */
    public void copyFrom(DeviceTensor other) {
        if (other.dtype != dtype || other.size() != size()) {
            throw new IllegalArgumentException("copy of " + other + " into " + this);
        }
        device.driver().copyOnDevice(address(), other.address(), byteSize, device.stream());
    }

    /** A new host tensor with this tensor's dtype, shape and values (waits for the stream). */
    public Tensor toHost() {
        Tensor out = Tensor.zeros(dtype, shape);
        device.driver().synchronize(device.stream());
        device.driver().copyToHost(out.segment(), address(), byteSize);
        return out;
    }

    /** The values as a new F32 host tensor. */
    public Tensor toHostF32() {
        Tensor t = toHost();
        return t.dtype() == DType.F32 ? t : t.to(DType.F32);
    }

    /** Sets every byte to zero (ordered on the stream). */
    public void fillZero() {
        device.driver().fillBytes(address(), (byte) 0, byteSize, device.stream());
    }

    /** Sets every element of a 32-bit tensor to the bits of {@code value}. */
    public void fill(float value) {
        if (dtype.bits() != 32) {
            throw new UnsupportedOperationException("fill(float) on " + this);
        }
        device.driver().fillInts(address(), Float.floatToRawIntBits(value), size(), device.stream());
    }

    /** Copies a small native buffer of host values (ints, floats) into this tensor, ordered on the stream. */
    void copyFromNative(MemorySegment host) {
        device.driver().copyToDeviceAsync(address(), host, byteSize, device.stream());
    }

    /** Frees the memory this tensor allocated (views free nothing); later uses of the tensor fail. */
    @Override
    public void close() {
        if (!closed && owner) {
            device.driver().free(address, device.stream());
        }
        closed = true;
    }

    private void check() {
        if (closed) {
            throw new IllegalStateException("use of a closed device tensor " + this);
        }
    }

    @Override
    public String toString() {
        return "DeviceTensor[" + dtype + " " + Arrays.toString(shape) + "]";
    }
}
