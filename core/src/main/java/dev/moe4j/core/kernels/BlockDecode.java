package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.quant.BlockCodec;
import dev.moe4j.core.quant.KQuants;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
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
    private static final VectorSpecies<Byte> BYTES = BlockDots.BYTES;

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
        boolean lanes = LANES == 8 || LANES == 16;
        switch (type) {
            case Q8_0 -> {
                if (lanes) {
                    q8(src, at, dst, off, blocks);
                    return;
                }
            }
            case Q4_K -> {
                if (lanes) {
                    q4k(src, at, dst, off, blocks);
                    return;
                }
            }
            case Q6_K -> {
                if (lanes) {
                    q6k(src, at, dst, off, blocks);
                    return;
                }
            }
            default -> {
            }
        }
        BlockCodec.of(type).dequantize(src, at, dst, off, blocks);
    }

    /** Q4_K: d·scale·code − dmin·min per sub-block, in the codec's order of roundings. */
    private static void q4k(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 144, off += KQuants.SUPER_BLOCK) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            float dmin = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 2));
            for (int pair = 0; pair < 4; pair++) {
                float d1 = d * KQuants.packedScale(src, at + 4, 2 * pair);
                float m1 = dmin * KQuants.packedMin(src, at + 4, 2 * pair);
                float d2 = d * KQuants.packedScale(src, at + 4, 2 * pair + 1);
                float m2 = dmin * KQuants.packedMin(src, at + 4, 2 * pair + 1);
                int y = off + 64 * pair;
                for (int h = 0; h < 32; h += LANES) {
                    var bytes = ByteVector.fromMemorySegment(BYTES, src, at + 16 + 32L * pair + h, LE);
                    BlockDots.widen(bytes.lanewise(VectorOperators.AND, (byte) 0x0F)).mul(d1).sub(m1)
                            .intoArray(dst, y + h);
                    BlockDots.widen(bytes.lanewise(VectorOperators.LSHR, 4)).mul(d2).sub(m2)
                            .intoArray(dst, y + 32 + h);
                }
            }
        }
    }

    /** Q6_K: (d·scale)·code with code = (low nibble | two high bits << 4) − 32, in the codec's order. */
    private static void q6k(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 210, off += KQuants.SUPER_BLOCK) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 208));
            for (int half = 0; half < 2; half++) {
                long ql = at + 64L * half, qh = at + 128 + 32L * half, sc = at + 192 + 8L * half;
                int y = off + 128 * half;
                for (int l = 0; l < 32; l += LANES) {
                    int is = l / 16;
                    var low0 = ByteVector.fromMemorySegment(BYTES, src, ql + l, LE);
                    var low1 = ByteVector.fromMemorySegment(BYTES, src, ql + 32 + l, LE);
                    var high = ByteVector.fromMemorySegment(BYTES, src, qh + l, LE);
                    var q1 = low0.lanewise(VectorOperators.AND, (byte) 0x0F)
                            .or(high.lanewise(VectorOperators.LSHL, 4).lanewise(VectorOperators.AND, (byte) 0x30));
                    var q2 = low1.lanewise(VectorOperators.AND, (byte) 0x0F)
                            .or(high.lanewise(VectorOperators.LSHL, 2).lanewise(VectorOperators.AND, (byte) 0x30));
                    var q3 = low0.lanewise(VectorOperators.LSHR, 4).or(high.lanewise(VectorOperators.AND, (byte) 0x30));
                    var q4 = low1.lanewise(VectorOperators.LSHR, 4)
                            .or(high.lanewise(VectorOperators.LSHR, 2).lanewise(VectorOperators.AND, (byte) 0x30));
                    BlockDots.widen(q1.sub((byte) 32)).mul(d * src.get(ValueLayout.JAVA_BYTE, sc + is)).intoArray(dst, y + l);
                    BlockDots.widen(q2.sub((byte) 32)).mul(d * src.get(ValueLayout.JAVA_BYTE, sc + is + 2)).intoArray(dst, y + 32 + l);
                    BlockDots.widen(q3.sub((byte) 32)).mul(d * src.get(ValueLayout.JAVA_BYTE, sc + is + 4)).intoArray(dst, y + 64 + l);
                    BlockDots.widen(q4.sub((byte) 32)).mul(d * src.get(ValueLayout.JAVA_BYTE, sc + is + 6)).intoArray(dst, y + 96 + l);
                }
            }
        }
    }

    /** Q8_0: 32 signed bytes times the block's F16 scale, a vector of bytes widened and scaled at a time. */
    private static void q8(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 34, off += 32) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            for (int h = 0; h < 32; h += LANES) {
                BlockDots.widen(ByteVector.fromMemorySegment(BYTES, src, at + 2 + h, LE)).mul(d).intoArray(dst, off + h);
            }
        }
    }
}
