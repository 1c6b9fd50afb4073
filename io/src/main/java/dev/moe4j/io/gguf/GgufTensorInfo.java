package dev.moe4j.io.gguf;

import dev.moe4j.core.Tensor;

/**
 * A tensor as a GGUF file describes it: name, type, shape (row-major, outermost first: the reverse of the file's
 * dimension order) and the offset of its data from the start of the data section.
 */
public record GgufTensorInfo(String name, GgmlType type, int[] shape, long offset) {
    public GgufTensorInfo {
        shape = shape.clone();
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    public long byteSize() {
        return type.dtype().byteCount(Tensor.elementCount(shape));
    }
}
