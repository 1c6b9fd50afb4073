package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.quant.BlockCodec;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;

/**
 * Block-quantised weights decoded to F32 for the kernels: the same values as {@link BlockCodec}'s (which follows
 * ggml bit for bit), with the Vector API where a type has a fast path. The products decode a few rows or a packing
 * panel at a time into a small scratch and run their F32 micro-kernels on it, so the weights stay quantised in
 * memory and are read once.
 */
final class BlockDecode {
    /** Bytes as wide as a float vector has lanes, widened to one float vector each. */
    private static final VectorSpecies<Byte> BYTES = ByteVector.SPECIES_PREFERRED
            .withShape(VectorShape.forBitSize(Math.max(64, LANES * 8)));

    private BlockDecode() {
    }

    /** Bytes of one row of {@code cols} elements of a block type. */
    static long rowBytes(DType type, long cols) {
        return type.byteCount(cols);
    }

    /**
     * Decodes {@code count} elements (whole blocks) of a row, starting at element {@code from} of the row whose
     * first byte is {@code rowByte}, into {@code dst[off ..]}.
     */
    static void decode(DType type, MemorySegment src, long rowByte, long from, float[] dst, int off, int count) {
        int be = type.blockElements();
        long at = rowByte + from / be * type.blockBytes();
        int blocks = count / be;
        if (type == DType.Q8_0 && LANES >= 8 && 32 % LANES == 0) {
            q8(src, at, dst, off, blocks);
        } else {
            BlockCodec.of(type).dequantize(src, at, dst, off, blocks);
        }
    }

    /** Q8_0: 32 signed bytes times the block's F16 scale, a vector of bytes widened and scaled at a time. */
    private static void q8(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 34, off += 32) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            for (int h = 0; h < 32; h += LANES) {
                var q = (FloatVector) ByteVector.fromMemorySegment(BYTES, src, at + 2 + h, LE)
                        .convertShape(VectorOperators.B2F, F, 0);
                q.mul(d).intoArray(dst, off + h);
            }
        }
    }
}
