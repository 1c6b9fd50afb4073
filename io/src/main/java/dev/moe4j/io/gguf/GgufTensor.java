package dev.moe4j.io.gguf;

import dev.moe4j.core.Tensor;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * A tensor to write into a GGUF file: its name, its type in the file, its shape (row-major, as moe4j's tensors;
 * the file stores the dimensions reversed, innermost first) and where its elements come from: one or more
 * {@link GgufPart}s, host tensors (F32, BF16, F16 or a block-quantised type) or values computed as they are written,
 * whose elements, concatenated in order, are the tensor's, converted to {@code type} as they are written (a stored
 * part already of that type is copied as it is). Parts let a converter stack per-expert matrices or reorder rows
 * without copying anything in memory; the writer streams them from wherever they lie, a memory-mapped checkpoint
 * included.
 *
 * <p>A block-quantised tensor's rows are whole blocks, and so is every part, so that no block straddles two parts.
 */
public record GgufTensor(String name, GgmlType type, int[] shape, List<GgufPart> parts) {
    /** ggml's GGML_MAX_NAME is 64 bytes with the terminating zero. */
    public static final int MAX_NAME_BYTES = 63;
    /** ggml's GGML_MAX_DIMS. */
    public static final int MAX_DIMS = 4;

    public GgufTensor {
        shape = shape.clone();
        parts = List.copyOf(parts);
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes == 0 || nameBytes > MAX_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name '" + name + "' must have 1 to " + MAX_NAME_BYTES
                    + " bytes, has " + nameBytes);
        }
        if (shape.length == 0 || shape.length > MAX_DIMS) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + shape.length
                    + " dimensions; GGUF tensors have 1 to " + MAX_DIMS);
        }
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' has a negative dimension: "
                        + Arrays.toString(shape));
            }
        }
        int block = type.dtype().blockElements();
        if (shape[shape.length - 1] % block != 0) {
            throw new IllegalArgumentException("tensor '" + name + "' of type " + type + " has rows of "
                    + shape[shape.length - 1] + " elements, not a multiple of its block size " + block);
        }
        long elements = 0;
        for (GgufPart part : parts) {
            if (part instanceof GgufPart.Stored(Tensor t)
                    && (!t.isHost() || !(t.dtype().isKernelFloat() || GgmlType.of(t.dtype()).isPresent()))) {
                throw new IllegalArgumentException("tensor '" + name + "': a part is " + t
                        + "; parts are host tensors of F32, BF16, F16 or a block type GGUF stores");
            }
            if (part.size() % block != 0) {
                throw new IllegalArgumentException("tensor '" + name + "' of type " + type + ": a part of "
                        + part.size() + " elements is not whole blocks of " + block);
            }
            elements += part.size();
        }
        if (elements != Tensor.elementCount(shape)) {
            throw new IllegalArgumentException("tensor '" + name + "' of shape " + Arrays.toString(shape) + " has "
                    + Tensor.elementCount(shape) + " elements but its parts hold " + elements);
        }
    }

    /** A tensor written from one source tensor of the same shape. */
    public static GgufTensor of(String name, GgmlType type, Tensor source) {
        return new GgufTensor(name, type, source.shape(), List.of(new GgufPart.Stored(source)));
    }

    /** A tensor written from host tensors whose elements, concatenated in order, are its elements. */
    public static GgufTensor of(String name, GgmlType type, int[] shape, List<Tensor> parts) {
        return new GgufTensor(name, type, shape, parts.stream().<GgufPart>map(GgufPart.Stored::new).toList());
    }

    /** A tensor whose elements are {@code values} from index 0, computed as they are written. */
    public static GgufTensor computed(String name, GgmlType type, int[] shape, GgufPart.Values values) {
        return new GgufTensor(name, type, shape, List.of(new GgufPart.Computed(values, 0,
                Tensor.elementCount(shape))));
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** The dimensions in GGUF's order: innermost (contiguous) first, the reverse of {@link #shape()}. */
    public long[] ggufDims() {
        long[] dims = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            dims[i] = shape[shape.length - 1 - i];
        }
        return dims;
    }

    /** Bytes of the tensor's data in the file (before the padding that aligns the next tensor). */
    public long byteSize() {
        return type.dtype().byteCount(Tensor.elementCount(shape));
    }
}
