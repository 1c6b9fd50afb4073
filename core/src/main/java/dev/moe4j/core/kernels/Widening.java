package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Loads of weight elements (F32, BF16 or F16) as F32 values, vector-wide or one at a time. The kernels keep
 * 16-bit weights as they are in memory and widen them in registers, so a weight is read once at its stored size.
 */
final class Widening {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int LANES = F.length();
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** Shorts with as many lanes as F: half the vector width. */
    static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private static final FloatVector TWO_POW_112 = FloatVector.broadcast(F, 0x1p112f);

    private Widening() {
    }

    /** {@link #LANES} F32 values starting at element {@code index}. */
    static FloatVector f32(MemorySegment s, long index) {
        return FloatVector.fromMemorySegment(F, s, index * 4, LE);
    }

    /** {@link #LANES} BF16 values starting at element {@code index}, widened: bfloat16 is the top half of a float. */
    static FloatVector bf16(MemorySegment s, long index) {
        var bits = (IntVector) ShortVector.fromMemorySegment(S, s, index * 2, LE).convertShape(VectorOperators.S2I, I, 0);
        return bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * {@link #LANES} F16 values starting at element {@code index}, widened without a table or a mask: the half's
     * exponent and mantissa bits moved into float position and multiplied by 2^112 give every finite value
     * exactly (subnormals included); magnitudes from 0x7C00 up (infinities, NaNs) get the all-ones float exponent
     * OR-ed in, selected arithmetically; the sign is put back last.
     */
    static FloatVector f16(MemorySegment s, long index) {
        var h = (IntVector) ShortVector.fromMemorySegment(S, s, index * 2, LE).convertShape(VectorOperators.S2I, I, 0);
        var magnitude = h.lanewise(VectorOperators.AND, 0x7FFF);
        var finite = magnitude.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(TWO_POW_112).reinterpretAsInts();
        // (magnitude + 0x400) >> 15 is 1 exactly for magnitude >= 0x7C00; negated it is an all-ones mask.
        var special = magnitude.add(0x400).lanewise(VectorOperators.LSHR, 15).neg().lanewise(VectorOperators.AND, 0x7F800000);
        var sign = h.lanewise(VectorOperators.AND, 0x8000).lanewise(VectorOperators.LSHL, 16);
        return finite.lanewise(VectorOperators.OR, special).lanewise(VectorOperators.OR, sign).reinterpretAsFloats();
    }

    /**
     * dst[off .. off+count) = elements [from, from+count) of s, of type {@code type}, as F32. The type is
     * dispatched once, outside the loops, so each loop holds one conversion: kernels that widen through here
     * stay small enough for C2 to keep every vector in registers, whichever types one JVM has seen.
     */
    static void widen(DType type, MemorySegment s, long from, float[] dst, int off, int count) {
        switch (type) {
            case F32 -> {
                // a vector loop: a bulk copy's call overhead dominates the short runs the packing asks for
                int c = 0;
                for (int bound = F.loopBound(count); c < bound; c += LANES) {
                    f32(s, from + c).intoArray(dst, off + c);
                }
                for (; c < count; c++) {
                    dst[off + c] = s.get(FLOAT, (from + c) * 4);
                }
            }
            case BF16 -> {
                int c = 0;
                for (int bound = F.loopBound(count); c < bound; c += LANES) {
                    bf16(s, from + c).intoArray(dst, off + c);
                }
                for (; c < count; c++) {
                    dst[off + c] = scalar(DType.BF16, s, from + c);
                }
            }
            case F16 -> {
                int c = 0;
                for (int bound = F.loopBound(count); c < bound; c += LANES) {
                    f16(s, from + c).intoArray(dst, off + c);
                }
                for (; c < count; c++) {
                    dst[off + c] = scalar(DType.F16, s, from + c);
                }
            }
            default -> throw unsupported(type);
        }
    }

    /** As {@link #widen(DType, MemorySegment, long, float[], int, int)}, into F32 elements of a segment. */
    static void widen(DType type, MemorySegment s, long from, MemorySegment dst, long dstIndex, int count) {
        switch (type) {
            case F32 -> MemorySegment.copy(s, from * 4, dst, dstIndex * 4, (long) count * 4);
            case BF16 -> {
                int c = 0;
                for (int bound = F.loopBound(count); c < bound; c += LANES) {
                    bf16(s, from + c).intoMemorySegment(dst, (dstIndex + c) * 4, LE);
                }
                for (; c < count; c++) {
                    setF32(dst, dstIndex + c, scalar(DType.BF16, s, from + c));
                }
            }
            case F16 -> {
                int c = 0;
                for (int bound = F.loopBound(count); c < bound; c += LANES) {
                    f16(s, from + c).intoMemorySegment(dst, (dstIndex + c) * 4, LE);
                }
                for (; c < count; c++) {
                    setF32(dst, dstIndex + c, scalar(DType.F16, s, from + c));
                }
            }
            default -> throw unsupported(type);
        }
    }

    /** All of a small tensor (a norm weight, a bias) as a new F32 array, for kernels that read it per row. */
    static float[] toFloats(Tensor t) {
        float[] out = new float[Math.toIntExact(t.size())];
        widen(t.dtype(), t.segment(), 0, out, 0, out.length);
        return out;
    }

    /** One element of type {@code type} as F32. */
    static float scalar(DType type, MemorySegment s, long index) {
        return switch (type) {
            case F32 -> s.get(FLOAT, index * 4);
            case BF16 -> Float.intBitsToFloat((s.get(SHORT, index * 2) & 0xFFFF) << 16);
            case F16 -> Float.float16ToFloat(s.get(SHORT, index * 2));
            default -> throw unsupported(type);
        };
    }

    static float getF32(MemorySegment s, long index) {
        return s.get(FLOAT, index * 4);
    }

    static void setF32(MemorySegment s, long index, float value) {
        s.set(FLOAT, index * 4, value);
    }

    static IllegalArgumentException unsupported(DType type) {
        return new IllegalArgumentException("kernels read F32, BF16 or F16 weights, got " + type);
    }
}
