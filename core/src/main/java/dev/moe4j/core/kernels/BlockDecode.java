package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.quant.BlockCodec;
import dev.moe4j.core.quant.KQuants;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.moe4j.core.kernels.Widening.LANES;

/**
 * Block-quantised weights decoded to F32 for the kernels: the same values as {@link BlockCodec}'s (which follows
 * ggml bit for bit), with the Vector API where a type has a fast path. The products decode a few rows or a packing
 * panel at a time into a small scratch and run their F32 micro-kernels on it, so the weights stay quantised in
 * memory and are read once.
 */
final class BlockDecode {
    private BlockDecode() {
    }

    /**
     * Decodes {@code count} elements (whole blocks) of a row, starting at element {@code from} of the row whose
     * first byte is {@code rowByte}, into {@code dst[off ..]}. The types {@link BlockDots} has vector kernels for
     * decode here with vectors too; the others through their codec.
     */
    static void decode(DType type, MemorySegment src, long rowByte, long from, float[] dst, int off, int count) {
        int be = type.blockElements();
        long at = rowByte + from / be * type.blockBytes();
        int blocks = count / be;
        if (!BlockDots.handles(type)) {
            BlockCodec.of(type).dequantize(src, at, dst, off, blocks);
            return;
        }
        switch (type) {
            case Q8_0 -> q8(src, at, dst, off, blocks);
            case Q4_0 -> q4(src, at, dst, off, blocks);
            case Q4_K -> q4k(src, at, dst, off, blocks);
            case Q5_K -> q5k(src, at, dst, off, blocks);
            case Q6_K -> q6k(src, at, dst, off, blocks);
            case MXFP4 -> mxfp4(src, at, dst, off, blocks);
            case F8_E4M3_B32 -> e4m3(src, at, dst, off, blocks);
            default -> throw new IllegalStateException(type + " has a decode kernel but no vector decoding");
        }
    }

    /** Q4_0: (code − 8)·d, element j in the low nibble of byte j and j + 16 in its high one. */
    private static void q4(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 18, off += 32) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            for (int h = 0; h < 16; h += LANES) {
                var bytes = BlockDots.unsignedBytes(src, at + 2 + h);
                BlockDots.floats(bytes.and(0x0F).sub(8)).mul(d).intoArray(dst, off + h);
                BlockDots.floats(bytes.lanewise(VectorOperators.LSHR, 4).sub(8)).mul(d).intoArray(dst, off + 16 + h);
            }
        }
    }

    /** MXFP4: value(code)·2^(e−128), the values looked up in a register (16 lanes). */
    private static void mxfp4(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 17, off += 32) {
            float d = dev.moe4j.core.quant.Mxfp4Codec.halfScale(src.get(ValueLayout.JAVA_BYTE, at) & 0xFF);
            var bytes = BlockDots.unsignedBytes(src, at + 1);
            BlockDots.mxfp4(bytes.and(0x0F)).mul(d).intoArray(dst, off);
            BlockDots.mxfp4(bytes.lanewise(VectorOperators.LSHR, 4)).mul(d).intoArray(dst, off + 16);
        }
    }

    /**
     * Q4_K: d·scale·code − dmin·min per sub-block, in the codec's order of roundings. Q5_K has a method of its own
     * ({@link #q5k}): one method for both, the fifth bits behind a flag, grew past C2's inlining budget in a JVM that
     * had met both types (a Q4_K_M model has both), and its vectors were then boxed (a third of a prefill's time in
     * the Vector API's Java fallback).
     */
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
                    var bytes = BlockDots.unsignedBytes(src, at + 16 + 32L * pair + h);
                    BlockDots.floats(bytes.and(0x0F)).mul(d1).sub(m1).intoArray(dst, y + h);
                    BlockDots.floats(bytes.lanewise(VectorOperators.LSHR, 4)).mul(d2).sub(m2).intoArray(dst, y + 32 + h);
                }
            }
        }
    }

    /** Q5_K: as {@link #q4k}, each code taking its fifth bit from the 32 bytes after the scales. */
    private static void q5k(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 176, off += KQuants.SUPER_BLOCK) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            float dmin = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 2));
            for (int pair = 0; pair < 4; pair++) {
                float d1 = d * KQuants.packedScale(src, at + 4, 2 * pair);
                float m1 = dmin * KQuants.packedMin(src, at + 4, 2 * pair);
                float d2 = d * KQuants.packedScale(src, at + 4, 2 * pair + 1);
                float m2 = dmin * KQuants.packedMin(src, at + 4, 2 * pair + 1);
                int y = off + 64 * pair;
                for (int h = 0; h < 32; h += LANES) {
                    var bytes = BlockDots.unsignedBytes(src, at + 48 + 32L * pair + h);
                    var bits = BlockDots.unsignedBytes(src, at + 16 + h).lanewise(VectorOperators.LSHR, 2 * pair);
                    var lowCodes = bytes.and(0x0F).or(bits.and(1).lanewise(VectorOperators.LSHL, 4));
                    var highCodes = bytes.lanewise(VectorOperators.LSHR, 4).or(bits.and(2).lanewise(VectorOperators.LSHL, 3));
                    BlockDots.floats(lowCodes).mul(d1).sub(m1).intoArray(dst, y + h);
                    BlockDots.floats(highCodes).mul(d2).sub(m2).intoArray(dst, y + 32 + h);
                }
            }
        }
    }

    /** Q6_K: (d·scale)·code with code = (low nibble | two high bits << 4) − 32, in the codec's order. */
    private static void q6k(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 210, off += KQuants.SUPER_BLOCK) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 208));
            for (int quarter = 0; quarter < 8; quarter++) {
                int half = quarter / 4, q = quarter % 4;
                long low = at + 64L * half + 32 * (q & 1), high = at + 128 + 32L * half, sc = at + 192 + 8L * half + 2 * q;
                int y = off + 128 * half + 32 * q;
                for (int l = 0; l < 32; l += LANES) {
                    BlockDots.q6kCodes(src, low + l, high + l, 4 * (q >> 1), 2 * q)
                            .mul(d * src.get(ValueLayout.JAVA_BYTE, sc + l / 16)).intoArray(dst, y + l);
                }
            }
        }
    }

    /** F8_E4M3_B32: e4m3(code)·d, the codes decoded exactly and scaled by one multiplication, as the codec does. */
    private static void e4m3(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 36, off += 32) {
            float d = src.get(ValueLayout.JAVA_FLOAT_UNALIGNED, at);
            for (int h = 0; h < 32; h += LANES) {
                BlockDots.e4m3(src, at + 4 + h).mul(d).intoArray(dst, off + h);
            }
        }
    }

    /** Q8_0: 32 signed bytes times the block's F16 scale, a vector of bytes widened and scaled at a time. */
    private static void q8(MemorySegment src, long at, float[] dst, int off, int blocks) {
        for (int b = 0; b < blocks; b++, at += 34, off += 32) {
            float d = Float.float16ToFloat(src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            for (int h = 0; h < 32; h += LANES) {
                BlockDots.signedCodes(src, at + 2 + h).mul(d).intoArray(dst, off + h);
            }
        }
    }
}
