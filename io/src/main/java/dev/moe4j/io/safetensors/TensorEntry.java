package dev.moe4j.io.safetensors;

import dev.moe4j.core.DType;

import java.util.List;

/**
 * One tensor as a safetensors header describes it: its name, element type, shape, and where its bytes lie in the
 * data section ({@code begin} inclusive, {@code end} exclusive, relative to the start of the data, as in the file).
 */
public record TensorEntry(String name, DType dtype, List<Integer> shape, long begin, long end) {
    public TensorEntry {
        shape = List.copyOf(shape);
    }

    /** The shape as an array, as {@link dev.moe4j.core.Tensor} takes it. */
    public int[] dims() {
        return shape.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Number of elements: the product of the shape (1 for a scalar). */
    public long elementCount() {
        long n = 1;
        for (int d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long byteLength() {
        return end - begin;
    }

    /** The dtype and shape as the error messages and {@code moe4j inspect} write them, e.g. {@code F32[2,2]}. */
    public String describe() {
        return describe(dtype, shape);
    }

    static String describe(DType dtype, List<Integer> shape) {
        var s = new StringBuilder(dtype.name()).append('[');
        for (int i = 0; i < shape.size(); i++) {
            s.append(i == 0 ? "" : ",").append(shape.get(i));
        }
        return s.append(']').toString();
    }
}
