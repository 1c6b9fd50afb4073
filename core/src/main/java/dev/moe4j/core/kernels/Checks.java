package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;

import java.util.function.Supplier;

/** Argument checks shared by the kernels: a wrong shape or dtype is a bug in the caller, reported at once. */
final class Checks {
    private Checks() {
    }

    /**
     * Throws with the message when not ok. The message is built only then: kernels run these checks on every call,
     * and building their strings (tensors' shapes) each time took a share of a decoding step's samples.
     */
    static void require(boolean ok, Supplier<String> message) {
        if (!ok) {
            throw new IllegalArgumentException(message.get());
        }
    }

    static void requireF32(String op, Tensor... tensors) {
        for (Tensor t : tensors) {
            if (t != null && t.dtype() != DType.F32) {
                throw new IllegalArgumentException(op + " needs F32 activations and gradients, got " + t);
            }
        }
    }

    static void requireWeight(String op, Tensor weight) {
        if (weight != null && !weight.dtype().isKernelFloat()) {
            throw new IllegalArgumentException(op + " reads F32, BF16 or F16 weights, got " + weight);
        }
    }

    static void requireSameSize(String op, Tensor a, Tensor b) {
        if (a.size() != b.size()) {
            throw new IllegalArgumentException(op + ": sizes differ, " + a + " and " + b);
        }
    }

    /** Rows of at least this many elements in total are worth splitting over threads. */
    static int minRows(int cols, int elementsPerTask) {
        return Math.max(1, elementsPerTask / Math.max(1, cols));
    }
}
