package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
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
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Decode (one row of x) against block-quantised weights, reading the blocks where they are: each block's codes are
 * widened in registers, multiplied with x and the block's sum scaled once, so a weight byte is read once and never
 * written out decoded. Four weight rows go together, so that four streams from memory are in flight per thread.
 * Types without a kernel here take {@link MatMul}'s decoded-rows path.
 */
final class BlockDots {
    private static final VectorSpecies<Byte> BYTES = ByteVector.SPECIES_PREFERRED
            .withShape(VectorShape.forBitSize(Math.max(64, LANES * 8)));

    private BlockDots() {
    }

    /** Whether {@link #decode} has a kernel for this weight type on this machine's vectors. */
    static boolean handles(DType type) {
        return type == DType.Q8_0 && LANES >= 8 && 32 % LANES == 0;
    }

    /** out[0, m] = x[0, k] · w[m, k]ᵀ for one row of x. */
    static void decode(MemorySegment xs, int k, int m, DType type, MemorySegment ws, MemorySegment os) {
        long rowBytes = type.byteCount(k);
        int groups = (m + 3) / 4;
        int minGroups = (int) Math.max(1, (1 << 18) / (4 * rowBytes));
        Parallel.forRange(groups, minGroups, (from, to) -> {
            float[] sums = new float[LANES];
            for (int g = from; g < to; g++) {
                int j = 4 * g, rows = Math.min(4, m - j);
                long w0 = j * rowBytes;
                long w1 = rows > 1 ? w0 + rowBytes : w0, w2 = rows > 2 ? w0 + 2 * rowBytes : w0;
                long w3 = rows > 3 ? w0 + 3 * rowBytes : w0;
                q8Dots4(xs, k, ws, w0, w1, w2, w3, rows, os, j, sums);
            }
        });
    }

    /** x · w_r for the four Q8_0 rows starting at bytes w0..w3; the first {@code rows} are stored at out[j ..]. */
    private static void q8Dots4(MemorySegment xs, int k, MemorySegment ws, long w0, long w1, long w2, long w3,
                                int rows, MemorySegment os, int j, float[] sums) {
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        var a2 = a0;
        var a3 = a0;
        for (int c = 0; c < k; c += 32, w0 += 34, w1 += 34, w2 += 34, w3 += 34) {
            var s0 = FloatVector.zero(F);
            var s1 = s0;
            var s2 = s0;
            var s3 = s0;
            for (int h = 0; h < 32; h += LANES) {
                var xv = f32(xs, c + h);
                s0 = codes(ws, w0 + 2 + h).fma(xv, s0);
                s1 = codes(ws, w1 + 2 + h).fma(xv, s1);
                s2 = codes(ws, w2 + 2 + h).fma(xv, s2);
                s3 = codes(ws, w3 + 2 + h).fma(xv, s3);
            }
            a0 = s0.fma(scale(ws, w0), a0);
            a1 = s1.fma(scale(ws, w1), a1);
            a2 = s2.fma(scale(ws, w2), a2);
            a3 = s3.fma(scale(ws, w3), a3);
        }
        setF32(os, j, Lanes.sum(a0, sums));
        if (rows > 1) {
            setF32(os, j + 1, Lanes.sum(a1, sums));
        }
        if (rows > 2) {
            setF32(os, j + 2, Lanes.sum(a2, sums));
        }
        if (rows > 3) {
            setF32(os, j + 3, Lanes.sum(a3, sums));
        }
    }

    /** LANES signed byte codes widened to floats. */
    private static FloatVector codes(MemorySegment ws, long at) {
        return (FloatVector) ByteVector.fromMemorySegment(BYTES, ws, at, LE).convertShape(VectorOperators.B2F, F, 0);
    }

    /** A block's F16 scale, broadcast. */
    private static FloatVector scale(MemorySegment ws, long at) {
        return FloatVector.broadcast(F, Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, at)));
    }
}
