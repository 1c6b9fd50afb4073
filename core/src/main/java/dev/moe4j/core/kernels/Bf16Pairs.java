package dev.moe4j.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.I;
import static dev.moe4j.core.kernels.Widening.LE;

/**
 * BF16 weights read a 32-bit word (two values) at a time: a float whose low 16 bits are zero is the BF16 value above
 * them, so a word shifted left by 16 is its even (first) element as a float and the word with its low half cleared
 * is the odd one. Products then pair the even weights with x's even elements and the odd with the odd.
 */
final class Bf16Pairs {
    static final IntVector HIGH = IntVector.broadcast(I, 0xFFFF0000);

    private Bf16Pairs() {
    }

    /** {@code rows} rows of x [rows, k] (from x[offset]) split per row into its even elements then its odd ones. */
    static float[] split(float[] x, int offset, int rows, int k) {
        float[] out = new float[rows * k];
        int half = k / 2;
        for (int r = 0; r < rows; r++) {
            int row = offset + r * k;
            for (int i = 0; i < half; i++) {
                out[r * k + i] = x[row + 2 * i];
                out[r * k + half + i] = x[row + 2 * i + 1];
            }
        }
        return out;
    }

    static IntVector words(MemorySegment ws, long byteOffset) {
        return IntVector.fromMemorySegment(I, ws, byteOffset, LE);
    }

    static FloatVector even(IntVector words) {
        return words.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static FloatVector odd(IntVector words, IntVector high) {
        return words.and(high).reinterpretAsFloats();
    }
}
