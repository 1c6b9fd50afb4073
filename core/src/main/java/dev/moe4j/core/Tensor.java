package dev.moe4j.core;

import dev.moe4j.core.backend.Device;
import dev.moe4j.core.quant.BlockCodec;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A row-major, contiguous n-dimensional array: a shape, a {@link DType} and a {@link MemorySegment}.
 *
 * <p>The same type holds on-heap tensors (training activations and gradients, backed by a Java array) and
 * memory-mapped checkpoint weights, so that one set of kernels serves both. Views ({@link #reshape},
 * {@link #slice}, {@link #select}) share memory with their source; copies say so in their name.
 *
 * <p>Element access converts: {@link #getFloat} reads F32, BF16, F16 and F64 as float, {@link #getLong} reads
 * the integer types. Values are stored little-endian, as in safetensors files.
 *
 * <p>A tensor may also live on another {@link Device} (a GPU): it then holds that device's address of its first
 * element, which the host never dereferences. Shape, views and copies work as for host tensors; element access and
 * {@link #segment()} refuse, naming the device ({@link #toHost()} brings the values over). Operations on such
 * tensors go through the device's {@link dev.moe4j.core.backend.Backend}.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    private final DType dtype;
    private final int[] shape;
    private final long size;
    private final MemorySegment data;
    private final Device device;
    private final long address;

    private Tensor(DType dtype, int[] shape, MemorySegment data) {
        this.dtype = dtype;
        this.shape = shape;
        this.size = elementCount(shape);
        this.data = data;
        this.device = Device.HOST;
        this.address = 0;
        long needed = dtype.byteCount(size);
        if (data.byteSize() != needed) {
            throw new IllegalArgumentException("segment of " + data.byteSize() + " bytes does not hold "
                    + dtype + Arrays.toString(shape) + " (" + needed + " bytes)");
        }
    }

    private Tensor(DType dtype, int[] shape, Device device, long address) {
        this.dtype = dtype;
        this.shape = shape;
        this.size = elementCount(shape);
        this.data = null;
        this.device = device;
        this.address = address;
    }

    // ---- creation ----

    /** A new F32 tensor of zeros on the heap. */
    public static Tensor zeros(int... shape) {
        return zeros(DType.F32, shape);
    }

    /** A new tensor of zeros on the heap, backed by the Java array type that matches the element size. */
    public static Tensor zeros(DType dtype, int... shape) {
        int[] s = shape.clone();
        long n = elementCount(s);
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("heap tensor too large: " + Arrays.toString(s));
        }
        int count = (int) n;
        MemorySegment segment = switch (dtype) {
            case F32 -> MemorySegment.ofArray(new float[count]);
            case F64 -> MemorySegment.ofArray(new double[count]);
            case I64, U64, C64 -> MemorySegment.ofArray(new long[count]);
            case I32, U32 -> MemorySegment.ofArray(new int[count]);
            case I16, U16, F16, BF16 -> MemorySegment.ofArray(new short[count]);
            default -> MemorySegment.ofArray(new byte[Math.toIntExact(dtype.byteCount(count))]);
        };
        return new Tensor(dtype, s, segment);
    }

    /** Wraps a float array, without copying, as an F32 tensor of the given shape. */
    public static Tensor of(float[] values, int... shape) {
        return new Tensor(DType.F32, shape.clone(), MemorySegment.ofArray(values));
    }

    /** A 1-d F32 tensor over the given values (not copied). */
    public static Tensor vector(float... values) {
        return of(values, values.length);
    }

    /** A new I64 tensor holding the given values. */
    public static Tensor ofLongs(long[] values, int... shape) {
        return new Tensor(DType.I64, shape.clone(), MemorySegment.ofArray(values.clone()));
    }

    /**
     * A tensor over memory of another device, from the address of its first element (a device backend makes these;
     * the host never reads the address).
     */
    public static Tensor onDevice(Device device, DType dtype, long address, int... shape) {
        if (device.isHost()) {
            throw new IllegalArgumentException("host tensors are made from segments, not addresses");
        }
        return new Tensor(dtype, shape.clone(), device, address);
    }

    /** Views existing memory (for example a memory-mapped file region) as a tensor; sizes must agree. */
    public static Tensor wrap(DType dtype, MemorySegment data, int... shape) {
        return new Tensor(dtype, shape.clone(), data);
    }

    // ---- description ----

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

    /** The size of one axis; negative axes count from the end. */
    public int dim(int axis) {
        return shape[axis < 0 ? shape.length + axis : axis];
    }

    /** Number of elements. */
    public long size() {
        return size;
    }

    public long byteSize() {
        return data != null ? data.byteSize() : dtype.byteCount(size);
    }

    /** Where the memory is: {@link Device#HOST} for heap and mapped tensors. */
    public Device device() {
        return device;
    }

    /** True for memory the host can read: heap arrays and mapped files. */
    public boolean isHost() {
        return data != null;
    }

    /** The device address of the first element of a tensor on another device. */
    public long address() {
        if (data != null) {
            throw new IllegalStateException(this + " is in host memory; it has a segment, not a device address");
        }
        return address;
    }

    /** Size of the last axis: the length of a row. */
    public int cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    /** Number of rows: the product of every axis but the last. */
    public int rows() {
        return shape.length == 0 ? 1 : Math.toIntExact(size / Math.max(1, cols()));
    }

    /** The host memory; refuses a tensor on another device, whose memory the host cannot read. */
    public MemorySegment segment() {
        return host();
    }

    private MemorySegment host() {
        if (data == null) {
            throw new IllegalStateException(this + " is on " + device.name() + ": the host cannot read it "
                    + "(copy it over with toHost())");
        }
        return data;
    }

    public boolean hasShape(int... expected) {
        return Arrays.equals(shape, expected);
    }

    // ---- element access ----

    public float getFloat(long index) {
        MemorySegment data = host();
        if (dtype.isBlockQuantized()) {
            int n = dtype.blockElements();
            float[] block = new float[n];
            BlockCodec.of(dtype).dequantize(data, index / n * dtype.blockBytes(), block, 0, 1);
            return block[(int) (index % n)];
        }
        return switch (dtype) {
            case F32 -> data.get(F32, index * 4);
            case BF16 -> FloatFormats.bf16ToFloat(data.get(I16, index * 2));
            case F16 -> FloatFormats.f16ToFloat(data.get(I16, index * 2));
            case F64 -> (float) data.get(F64, index * 8);
            default -> getLong(index);
        };
    }

    public void setFloat(long index, float value) {
        MemorySegment data = host();
        switch (dtype) {
            case F32 -> data.set(F32, index * 4, value);
            case BF16 -> data.set(I16, index * 2, FloatFormats.floatToBf16(value));
            case F16 -> data.set(I16, index * 2, FloatFormats.floatToF16(value));
            case F64 -> data.set(F64, index * 8, value);
            default -> throw new UnsupportedOperationException("setFloat on " + dtype + " tensor");
        }
    }

    public long getLong(long index) {
        MemorySegment data = host();
        return switch (dtype) {
            case I64, U64 -> data.get(I64, index * 8);
            case I32 -> data.get(I32, index * 4);
            case U32 -> data.get(I32, index * 4) & 0xFFFFFFFFL;
            case I16 -> data.get(I16, index * 2);
            case U16 -> data.get(I16, index * 2) & 0xFFFF;
            case I8 -> data.get(ValueLayout.JAVA_BYTE, index);
            case U8, BOOL -> data.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            default -> throw new UnsupportedOperationException("getLong on " + dtype + " tensor");
        };
    }

    public void setLong(long index, long value) {
        MemorySegment data = host();
        switch (dtype) {
            case I64, U64 -> data.set(I64, index * 8, value);
            case I32, U32 -> data.set(I32, index * 4, (int) value);
            case I16, U16 -> data.set(I16, index * 2, (short) value);
            case I8, U8, BOOL -> data.set(ValueLayout.JAVA_BYTE, index, (byte) value);
            default -> throw new UnsupportedOperationException("setLong on " + dtype + " tensor");
        }
    }

    /** Element at the given multi-index, as float. */
    public float get(int... indices) {
        return getFloat(flatIndex(indices));
    }

    public void set(float value, int... indices) {
        setFloat(flatIndex(indices), value);
    }

    private long flatIndex(int[] indices) {
        if (indices.length != shape.length) {
            throw new IllegalArgumentException("index of rank " + indices.length + " into tensor of rank " + shape.length);
        }
        long flat = 0;
        for (int i = 0; i < shape.length; i++) {
            if (indices[i] < 0 || indices[i] >= shape[i]) {
                throw new IndexOutOfBoundsException("index " + Arrays.toString(indices) + " outside " + Arrays.toString(shape));
            }
            flat = flat * shape[i] + indices[i];
        }
        return flat;
    }

    // ---- views ----

    /** The same memory under another shape of equal size; one axis may be -1 and is then inferred. */
    public Tensor reshape(int... newShape) {
        int[] s = newShape.clone();
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (inferred >= 0) {
                    throw new IllegalArgumentException("more than one -1 in " + Arrays.toString(newShape));
                }
                inferred = i;
            } else {
                known *= s[i];
            }
        }
        if (inferred >= 0) {
            if (known == 0 || size % known != 0) {
                throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
            }
            s[inferred] = Math.toIntExact(size / known);
        }
        if (elementCount(s) != size) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        }
        return data == null ? new Tensor(dtype, s, device, address) : new Tensor(dtype, s, data);
    }

    /** Rows {@code from} (inclusive) to {@code to} (exclusive) along the first axis, sharing memory. */
    public Tensor slice(int from, int to) {
        if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
            throw new IndexOutOfBoundsException("slice [" + from + ", " + to + ") of " + Arrays.toString(shape));
        }
        long stride = shape[0] == 0 ? 0 : dtype.byteCount(size / shape[0]);
        int[] s = shape.clone();
        s[0] = to - from;
        if (data == null) {
            return new Tensor(dtype, s, device, address + from * stride);
        }
        return new Tensor(dtype, s, data.asSlice(from * stride, (to - from) * stride));
    }

    /** The i-th entry along the first axis, with that axis removed, sharing memory. */
    public Tensor select(int i) {
        Tensor row = slice(i, i + 1);
        int[] s = Arrays.copyOfRange(shape, 1, shape.length);
        return data == null ? new Tensor(dtype, s, device, row.address) : new Tensor(dtype, s, row.data);
    }

    // ---- copies ----

    /** A new F32 heap array holding every element converted to float. */
    public float[] toFloatArray() {
        if (size > Integer.MAX_VALUE) {
            throw new IllegalStateException("tensor too large for a float[]: " + this);
        }
        if (data == null) {
            return toHost().toFloatArray();
        }
        float[] out = new float[(int) size];
        if (dtype == DType.F32) {
            MemorySegment.copy(data, F32, 0, out, 0, out.length);
        } else if (dtype.isBlockQuantized()) {
            BlockCodec.of(dtype).dequantize(data, 0, out, 0, (int) (size / dtype.blockElements()));
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
        }
        return out;
    }

    /** A new heap tensor with every element converted to {@code target} (floating types only). */
    public Tensor to(DType target) {
        host();
        Tensor out = zeros(target, shape);
        out.copyFrom(this);
        return out;
    }

    /** A new tensor on the same device with the same dtype, shape and values (a heap tensor for host ones). */
    public Tensor copy() {
        if (data == null) {
            return device.backend().copyOf(this);
        }
        Tensor out = zeros(dtype, shape);
        MemorySegment.copy(data, 0, out.data, 0, data.byteSize());
        return out;
    }

    /** The values in host memory: this tensor when it is there, else a new heap copy. */
    public Tensor toHost() {
        return data != null ? this : device.backend().toHost(this);
    }

    /**
     * Copies the values of a tensor of equal size into this one, converting between float types; between devices
     * (host to GPU, GPU to host) the dtypes must agree.
     */
    public void copyFrom(Tensor source) {
        if (source.size != size) {
            throw new IllegalArgumentException("copy of " + source + " into " + this);
        }
        if (data == null || source.data == null) {
            (data == null ? device : source.device).backend().copy(this, source);
            return;
        }
        if (source.dtype == dtype) {
            MemorySegment.copy(source.data, 0, data, 0, data.byteSize());
            return;
        }
        if (dtype.isBlockQuantized()) {
            BlockCodec.of(dtype).quantize(source.toFloatArray(), 0, data, 0, (int) (size / dtype.blockElements()));
            return;
        }
        if (source.dtype.isBlockQuantized()) {
            float[] values = source.toFloatArray();
            for (int i = 0; i < values.length; i++) {
                setFloat(i, values[i]);
            }
            return;
        }
        for (long i = 0; i < size; i++) {
            setFloat(i, source.getFloat(i));
        }
    }

    public void fill(float value) {
        if (data == null) {
            device.backend().fill(this, value);
            return;
        }
        if (Float.floatToRawIntBits(value) == 0) {
            data.fill((byte) 0); // +0.0 is all zero bits in every float type: a memset (zeroing gradients)
            return;
        }
        if (dtype == DType.F32) {
            for (long i = 0; i < size; i++) {
                data.set(F32, i * 4, value);
            }
        } else {
            for (long i = 0; i < size; i++) {
                setFloat(i, value);
            }
        }
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + " " + Arrays.toString(shape) + (data == null ? " on " + device.name() : "") + "]";
    }

    public static long elementCount(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }
}
