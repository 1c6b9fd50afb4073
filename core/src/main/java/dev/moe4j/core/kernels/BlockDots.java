package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.quant.KQuants;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static jdk.incubator.vector.VectorOperators.BITWISE_BLEND;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Decode (one row of x) against block-quantised weights, reading the blocks where they are: codes are widened in
 * registers and multiplied with x, and each (sub-)block's sum is scaled once, so a weight byte is read once and never
 * written out decoded. Every type goes one weight row at a time, which reads a thread's rows from memory as one
 * sequential stream: side by side, rows of a few KiB made as many short streams, read 1.4-2.6x slower (see
 * {@link #q8Dot} and {@link #q4kDot}). A Q4_K minimum multiplies the sum of x over its sub-block, computed once per
 * call for all rows. Types without a kernel here take {@link MatMul}'s decoded-rows path.
 */
final class BlockDots {
    static final VectorSpecies<Byte> BYTES = ByteVector.SPECIES_PREFERRED
            .withShape(VectorShape.forBitSize(Math.max(64, LANES * 8)));
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED.withShape(F.vectorShape());
    private static final int SUB = 32;

    private BlockDots() {
    }

    /** Whether {@link #decode} has a kernel for this weight type on this machine's vectors (8 or 16 lanes). */
    static boolean handles(DType type) {
        boolean lanes = LANES == 8 || LANES == 16;
        return lanes && (type == DType.Q8_0 || type == DType.Q4_K || type == DType.Q5_K || type == DType.Q6_K
                || type == DType.Q4_0 || type == DType.F8_E4M3_B32)
                || LANES == 16 && type == DType.MXFP4;
    }

    /**
     * out[0, m] = x[0, k] · w[m, k]ᵀ for one row of x. x is read from a float array: loads from segments go through
     * a check of the segment's class, and in a whole model, where the shared loaders meet heap and native segments,
     * C2 then left parts of these loops to the Vector API's Java code (a Q8_0 decode read 5 GB/s).
     */
    static void decode(MemorySegment xSegment, int k, int m, DType type, MemorySegment ws, MemorySegment os) {
        float[] xs = new float[k];
        MemorySegment.copy(xSegment, Widening.FLOAT, 0, xs, 0, k);
        long rowBytes = type.byteCount(k);
        int minRows = (int) Math.max(1, (1 << 18) / rowBytes);
        boolean planes = VECTOR_SCALES && (type == DType.Q4_K || type == DType.Q5_K || type == DType.Q6_K);
        boolean kQuant = type == DType.Q4_K || type == DType.Q5_K;
        float[] xSums = kQuant ? subBlockSums(xs, k) : planes ? q6kGroupSums(xs, k) : null;
        // the plane kernels read x in the order of the codes' nibbles in the words they load (Q4_K and Q5_K lay
        // their nibbles out alike)
        float[] xq = !planes ? xs : kQuant ? q4kPlaneOrder(xs, k) : q6kPlaneOrder(xs, k);
        // One loop per type, each its own lambda: one loop calling every kernel grew past C2's inlining budget once
        // a JVM had met several types (a Q4_K_M model has four), and the kernels it then left out of line boxed
        // their vectors (Q4_K decode 3.4 GB/s in a JVM that had run the other types, 5.9 alone; bench matmul).
        switch (type) {
            case Q8_0 -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer();
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    q8Dot(xs, k, ws, r * rowBytes, rows, slot * LANES);
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case Q4_K -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer(), scales = new float[16];
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    if (VECTOR_SCALES) {
                        q4kPlaneDot(xq, xSums, k, ws, r * rowBytes, rows, slot * LANES);
                    } else {
                        q4kDot(xs, xSums, k, ws, r * rowBytes, scales, rows, slot * LANES);
                    }
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case Q5_K -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer(), scales = new float[16];
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    if (VECTOR_SCALES) {
                        q5kPlaneDot(xq, xSums, k, ws, r * rowBytes, rows, slot * LANES);
                    } else {
                        q5kDot(xs, xSums, k, ws, r * rowBytes, scales, rows, slot * LANES);
                    }
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case Q6_K -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer(), scales = new float[16];
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    if (VECTOR_SCALES) {
                        q6kPlaneDot(xq, xSums, k, ws, r * rowBytes, rows, slot * LANES);
                    } else {
                        q6kDot(xs, k, ws, r * rowBytes, scales, rows, slot * LANES);
                    }
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case Q4_0 -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer();
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    q4Dot(xs, k, ws, r * rowBytes, rows, slot * LANES);
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case MXFP4 -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer();
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    mxfp4Dot(xs, k, ws, r * rowBytes, rows, slot * LANES);
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            case F8_E4M3_B32 -> Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer();
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    e4m3Dot(xs, k, ws, r * rowBytes, rows, slot * LANES);
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(rows, slot + 1, os, r - slot);
                    }
                }
            });
            default -> throw new IllegalStateException(type + " has no decode kernel");
        }
    }

    /** The sums of the {@code count} rows' accumulators stored in {@code rows}, at rows first.. of out. */
    private static void storeRows(float[] rows, int count, MemorySegment os, long first) {
        Lanes.reduceRows(rows, count);
        for (int i = 0; i < count; i++) {
            setF32(os, first + i, rows[i]);
        }
    }

    // ---- Q8_0: 32 signed codes and an F16 scale per 34-byte block ----

    /**
     * x · w for one Q8_0 row at byte {@code w}, two blocks a step into two accumulators. One row at a time reads the
     * weights from memory in one sequential stream (rows lie one after another): four rows side by side, four
     * interleaved streams of a row's 1-4 KiB each, read 6.6-10.4 GB/s from memory on one thread where this reads
     * 14-18 (decode shapes of 1024 to 3584 columns; in cache both ran about 18).
     */
    private static void q8Dot(float[] xs, int k, MemorySegment ws, long w, float[] rows, int at) {
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        int c = 0;
        for (; c + 64 <= k; c += 64, w += 68) {
            var s0 = signedCodes(ws, w + 2).mul(x(xs, c));
            var s1 = signedCodes(ws, w + 36).mul(x(xs, c + 32));
            for (int h = LANES; h < 32; h += LANES) {
                s0 = signedCodes(ws, w + 2 + h).fma(x(xs, c + h), s0);
                s1 = signedCodes(ws, w + 36 + h).fma(x(xs, c + 32 + h), s1);
            }
            a0 = s0.fma(scale(ws, w), a0);
            a1 = s1.fma(scale(ws, w + 34), a1);
        }
        if (c < k) { // an odd block count
            var s0 = signedCodes(ws, w + 2).mul(x(xs, c));
            for (int h = LANES; h < 32; h += LANES) {
                s0 = signedCodes(ws, w + 2 + h).fma(x(xs, c + h), s0);
            }
            a0 = s0.fma(scale(ws, w), a0);
        }
        a0.add(a1).intoArray(rows, at);
    }

    // ---- Q4_K and Q5_K: per 256 elements F16 d and dmin, 6-bit scales and minimums, 4-bit codes (and fifth bits) ----

    /**
     * Whether a K-quant super-block's 12 bytes of 6-bit scales and minimums are cut apart in one 16-lane vector
     * ({@link #kScaleVector}) rather than one value at a time in scalar code ({@link #kScales}). The scalar decoding
     * took as many instructions as the products of the super-block's 256 codes (perf on the compiled kernel), which
     * bound the kernel by how many instructions a core retires. Eight lanes cannot hold the 16 values at once. With
     * them, Q4_K, Q5_K and Q6_K go through the plane kernels ({@link #q4kPlaneDot}, {@link #q5kPlaneDot},
     * {@link #q6kPlaneDot}); {@link #q4kDot}, {@link #q5kDot} and {@link #q6kDot} serve eight lanes.
     */
    static final boolean VECTOR_SCALES = LANES == 16;
    /**
     * Lane i of the header vector [d·scale_0..7, dmin·min_0..7] takes its low bits from byte PICK_LOW[i] of the
     * super-block (bytes 0-3 are d and dmin, 4-15 the packed scales), shifted right by SHIFT_LOW[i] and masked with
     * MASK_LOW[i], and its top two bits from the top two bits of byte PICK_HIGH[i] where MASK_HIGH[i] keeps them:
     * scales and minimums 0-3 are the low six bits of bytes 4-7 and 8-11, scales 4-7 the low nibbles of bytes 12-15
     * over the top bits of bytes 4-7, minimums 4-7 the high nibbles of bytes 12-15 over the top bits of bytes 8-11.
     */
    private static final VectorShuffle<Integer> PICK_LOW = VECTOR_SCALES
            ? VectorShuffle.fromValues(INTS, 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15) : null;
    private static final VectorShuffle<Integer> PICK_HIGH = VECTOR_SCALES
            ? VectorShuffle.fromValues(INTS, 0, 0, 0, 0, 4, 5, 6, 7, 0, 0, 0, 0, 8, 9, 10, 11) : null;
    private static final IntVector SHIFT_LOW = VECTOR_SCALES
            ? ints(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4) : null;
    private static final IntVector MASK_LOW = VECTOR_SCALES
            ? ints(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15) : null;
    private static final IntVector MASK_HIGH = VECTOR_SCALES
            ? ints(0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30) : null;
    private static final VectorMask<Float> MINIMUM_LANES = VECTOR_SCALES ? VectorMask.fromLong(F, 0xFF00L) : null;
    private static final VectorSpecies<Byte> HEADER = ByteVector.SPECIES_128;
    /** A pair of sub-blocks' 32 code bytes, widened a half at a time into int lanes. */
    private static final VectorSpecies<Byte> PAIR = VectorSpecies.of(byte.class, VectorShape.forBitSize(32 * 8));

    private static IntVector ints(int... values) {
        return IntVector.fromArray(INTS, values, 0);
    }

    /**
     * The sums of x over each 32-element sub-block, per super-block twice, [Σ_0..Σ_7, Σ_0..Σ_7]: the plane kernels
     * read them beside the header vector [d·scale_0..7, dmin·min_0..7] (both halves), {@link #kScales} the second.
     */
    private static float[] subBlockSums(float[] xs, int k) {
        float[] out = new float[k / KQuants.SUPER_BLOCK * 16];
        float[] scratch = new float[LANES];
        for (int s = 0; s < k / SUB; s++) {
            var acc = x(xs, s * SUB);
            for (int h = LANES; h < SUB; h += LANES) {
                acc = acc.add(x(xs, s * SUB + h));
            }
            out[s / 8 * 16 + s % 8] = out[s / 8 * 16 + 8 + s % 8] = Lanes.sum(acc, scratch);
        }
        return out;
    }

    /**
     * x · w for one Q4_K row at byte {@code w}, eight lanes (16 take {@link #q4kPlaneDot}): Σ_sub d·scale·(Σ code·x)
     * − Σ_sub dmin·min·(Σ x), the minimums' term in scalar code ({@link #kScales}). Each 32 bytes of codes
     * hold a sub-block in their low nibbles and the next one in their high nibbles.
     *
     * <p>Codes are zero-extended to int lanes and converted, so the high nibble needs no mask; that ran 1.1x faster
     * than looking the codes up in a two-register table (which masks every index), and the even and odd sub-blocks sum
     * into two accumulators, so that no chain of dependent FMAs sets the pace. One row at a time: four rows side by
     * side were 1.3x faster with the weights in cache but 1.35x slower than this with them in memory (2048 x 2048, 40
     * copies rotated, one thread), where decode reads them. The loop calls the Vector API only, and Q5_K has a kernel
     * of its own ({@link #q5kDot}), so that each stays clear of C2's node budget for inlining
     * (NodeCountInliningCutoff): past it a call is left out of line and boxes its vectors every time (one kernel for
     * both types, with the fifth bits behind a flag, left Q5_K's loads of them out of line: a third of a Q4_K_M model's
     * decoding time went to that call).
     */
    private static void q4kDot(float[] xs, float[] xSums, int k, MemorySegment ws, long w, float[] scales,
                                float[] rows, int at) {
        var even = FloatVector.zero(F);
        var odd = even;
        float minimums = 0;
        for (int c = 0, sb = 0; c < k; c += KQuants.SUPER_BLOCK, w += 144, sb += 16) {
            minimums += kScales(ws, w, xSums, sb + 8, scales);
            for (int pair = 0; pair < 4; pair++) {
                int e = c + 64 * pair;
                var codes = ByteVector.fromMemorySegment(PAIR, ws, w + 16 + 32L * pair, LE);
                var low = FloatVector.zero(F);
                var high = low;
                for (int part = 0; part < 32 / LANES; part++) {
                    int h = part * LANES;
                    var lo = (IntVector) codes.convertShape(ZERO_EXTEND_B2I, INTS, part);
                    low = ((FloatVector) lo.and(15).convert(I2F, 0)).fma(FloatVector.fromArray(F, xs, e + h), low);
                    high = ((FloatVector) lo.lanewise(LSHR, 4).convert(I2F, 0))
                            .fma(FloatVector.fromArray(F, xs, e + 32 + h), high);
                }
                even = low.fma(FloatVector.broadcast(F, scales[2 * pair]), even);
                odd = high.fma(FloatVector.broadcast(F, scales[2 * pair + 1]), odd);
            }
        }
        var total = even.add(odd);
        total.withLane(0, total.lane(0) - minimums).intoArray(rows, at); // the minimums, summed in scalar code
    }

    /** A float's bits for 1.0, and the four mantissa bits (19-22) that make it 1 + code/16. */
    private static final int ONE_BITS = 0x3F800000, CODE_BITS = 0x00780000;
    /** [16 × 8, 1 × 8]: the header's scales times 16 (see q4kPlaneDot), its minimums as they are. */
    private static final FloatVector SIXTEEN_AND_ONE = VECTOR_SCALES
            ? FloatVector.broadcast(F, 16).blend(1, MINIMUM_LANES) : null;
    /** Per 64-byte load l of a super-block: the scales of its low nibbles' sub-blocks and of its high ones'. */
    private static final VectorShuffle<Float>[] LOW_SCALES = VECTOR_SCALES
            ? new VectorShuffle[] {halves(0, 2), halves(4, 6)} : null;
    private static final VectorShuffle<Float>[] HIGH_SCALES = VECTOR_SCALES
            ? new VectorShuffle[] {halves(1, 3), halves(5, 7)} : null;

    private static VectorShuffle<Float> halves(int first, int second) {
        int[] lanes = new int[16];
        for (int i = 0; i < 16; i++) {
            lanes[i] = i < 8 ? first : second;
        }
        return VectorShuffle.fromArray(F, lanes, 0);
    }

    /**
     * x · w for one Q4_K row at byte {@code w}, 16 lanes: the codes are read 64 bytes at a time as 16 int lanes of
     * four bytes each, and each of the eight nibble positions of a lane becomes a float in two operations, a shift
     * that puts the nibble on mantissa bits 19-22 and a blend into 1.0's bits, giving 1 + code/16. {@link #q4kDot}
     * widens each byte to an int lane first and converts it, about 1.4x the vector operations, which bound that
     * kernel (it reads about 6 GB/s a thread where memory gives 28). x comes permuted to match
     * ({@link #q4kPlaneOrder}). With v = 1 + code/16, Σ code·x = 16·(Σ v·x − Σ x): the 16 goes into the scales, and
     * the Σ x of each sub-block, times 16·d·scale, joins the minimums' term, computed once per super-block. The
     * subtraction costs about a bit and a half of the float's precision against the exact products.
     */
    private static void q4kPlaneDot(float[] xq, float[] xSums, int k, MemorySegment ws, long w, float[] rows, int at) {
        var low = FloatVector.zero(F);
        var high = low;
        var minimums = low;
        var one = IntVector.broadcast(INTS, ONE_BITS);
        for (int c = 0, sb = 0; c < k; c += KQuants.SUPER_BLOCK, w += 144, sb += 16) {
            var header = kScaleVector(ws, w).mul(SIXTEEN_AND_ONE);
            minimums = header.fma(FloatVector.fromArray(F, xSums, sb), minimums);
            for (int l = 0; l < 2; l++) {
                var words = IntVector.fromMemorySegment(INTS, ws, w + 16 + 64L * l, LE);
                int e = c + 128 * l;
                // nibble n of each word (bits 4n..4n+3) against x's plane n: even n are low nibbles, odd n high ones
                var lo = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHL, 19), CODE_BITS)
                        .reinterpretAsFloats()).mul(FloatVector.fromArray(F, xq, e));
                var hi = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHL, 15), CODE_BITS)
                        .reinterpretAsFloats()).mul(FloatVector.fromArray(F, xq, e + 16));
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHL, 11), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 32), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHL, 7), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 48), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHL, 3), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 64), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHR, 1), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 80), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHR, 5), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 96), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, words.lanewise(LSHR, 9), CODE_BITS)
                        .reinterpretAsFloats()).fma(FloatVector.fromArray(F, xq, e + 112), hi);
                low = lo.fma(header.rearrange(LOW_SCALES[l]), low);
                high = hi.fma(header.rearrange(HIGH_SCALES[l]), high);
            }
        }
        low.add(high).sub(minimums).intoArray(rows, at);
    }

    /**
     * x reordered for {@link #q4kPlaneDot}: per super-block and 64-byte load l, plane n (n = 0..7) holds in lane i
     * the element whose code is nibble n of the load's word i. Byte 4i + n/2 of the load is byte (4i + n/2) % 32 of
     * 32-byte group 2l + (4i + n/2) / 32, whose low nibble codes element 32·(2·group) + byte and high nibble element
     * 32·(2·group + 1) + byte of the super-block.
     */
    static float[] q4kPlaneOrder(float[] xs, int k) {
        float[] out = new float[k];
        for (int c = 0; c < k; c += KQuants.SUPER_BLOCK) {
            for (int l = 0; l < 2; l++) {
                for (int n = 0; n < 8; n++) {
                    for (int i = 0; i < 16; i++) {
                        int b = 4 * i + n / 2, group = 2 * l + b / 32;
                        out[c + 128 * l + 16 * n + i] = xs[c + 64 * group + 32 * (n % 2) + b % 32];
                    }
                }
            }
        }
        return out;
    }

    /** [32 × 8, 1 × 8]: the header's scales times 32 (see q5kPlaneDot), its minimums as they are. */
    private static final FloatVector THIRTY_TWO_AND_ONE = VECTOR_SCALES
            ? FloatVector.broadcast(F, 32).blend(1, MINIMUM_LANES) : null;
    /** The mantissa bits that take a Q5_K code's nibble (18-21) and its fifth bit (22): 1 + code/32. */
    private static final int NIBBLE_BITS = 0x003C0000, FIFTH_BIT = 0x00400000;
    /**
     * Per 64-byte load l: how far the fifth bits' bytes shift down so that sub-block pair 2l (lanes 0-7) and 2l + 1
     * (lanes 8-15) find theirs in bits 0 (low nibbles) and 1 (high nibbles) of each byte.
     */
    private static final IntVector[] FIFTH_SHIFTS = VECTOR_SCALES
            ? new IntVector[] {ints(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                    ints(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6)} : null;

    /**
     * x · w for one Q5_K row at byte {@code w}, 16 lanes: {@link #q4kPlaneDot} with each code's fifth bit shifted in
     * from its byte of the 32 fifth-bit bytes (copied into both halves of a vector, as {@link #q6kPlaneDot} copies
     * its high bits): v = 1 + code/32, so Σ code·x = 32·(Σ v·x − Σ x).
     */
    private static void q5kPlaneDot(float[] xq, float[] xSums, int k, MemorySegment ws, long w, float[] rows, int at) {
        var low = FloatVector.zero(F);
        var high = low;
        var minimums = low;
        var one = IntVector.broadcast(INTS, ONE_BITS);
        for (int c = 0, sb = 0; c < k; c += KQuants.SUPER_BLOCK, w += 176, sb += 16) {
            var header = kScaleVector(ws, w).mul(THIRTY_TWO_AND_ONE);
            minimums = header.fma(FloatVector.fromArray(F, xSums, sb), minimums);
            var fifths = IntVector.fromMemorySegment(INTS, ws, w + 16, LE).rearrange(HIGH_BITS[0]);
            for (int l = 0; l < 2; l++) {
                var q = IntVector.fromMemorySegment(INTS, ws, w + 48 + 64L * l, LE);
                var t = fifths.lanewise(LSHR, FIFTH_SHIFTS[l]);
                int e = c + 128 * l;
                // nibble n of each word (bits 4n..4n+3) to 18-21, and its fifth bit (bit 8·(n/2) + n % 2 of t) to 22
                var lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 18), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 22), FIFTH_BIT).reinterpretAsFloats())
                        .mul(FloatVector.fromArray(F, xq, e));
                var hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 14), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 21), FIFTH_BIT).reinterpretAsFloats())
                        .mul(FloatVector.fromArray(F, xq, e + 16));
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 10), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 14), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 32), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 6), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 13), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 48), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 2), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 6), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 64), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 2), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 5), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 80), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 6), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHR, 2), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 96), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 10), NIBBLE_BITS)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHR, 3), FIFTH_BIT).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 112), hi);
                low = lo.fma(header.rearrange(LOW_SCALES[l]), low);
                high = hi.fma(header.rearrange(HIGH_SCALES[l]), high);
            }
        }
        low.add(high).sub(minimums).intoArray(rows, at);
    }

    /**
     * x · w for one Q5_K row at byte {@code w}: as {@link #q4kDot}, with 32 bytes of fifth bits after the scales,
     * bit 2p of byte l for element l of sub-block 2p and bit 2p + 1 for element l of sub-block 2p + 1, each
     * blended in as bit 4 of its code.
     */
    private static void q5kDot(float[] xs, float[] xSums, int k, MemorySegment ws, long w, float[] scales,
                                float[] rows, int at) {
        var even = FloatVector.zero(F);
        var odd = even;
        float minimums = 0;
        for (int c = 0, sb = 0; c < k; c += KQuants.SUPER_BLOCK, w += 176, sb += 16) {
            minimums += kScales(ws, w, xSums, sb + 8, scales);
            var fifths = ByteVector.fromMemorySegment(PAIR, ws, w + 16, LE);
            for (int pair = 0; pair < 4; pair++) {
                int e = c + 64 * pair;
                var codes = ByteVector.fromMemorySegment(PAIR, ws, w + 48 + 32L * pair, LE);
                var low = FloatVector.zero(F);
                var high = low;
                for (int part = 0; part < 32 / LANES; part++) {
                    int h = part * LANES;
                    var lo = (IntVector) codes.convertShape(ZERO_EXTEND_B2I, INTS, part);
                    // the pair's fifth bits, moved to bit 4 of the low sub-block's code and of the high one's
                    var bits = ((IntVector) fifths.convertShape(ZERO_EXTEND_B2I, INTS, part)).lanewise(LSHR, 2 * pair);
                    var hi = lo.lanewise(LSHR, 4).lanewise(BITWISE_BLEND, bits.lanewise(LSHL, 3), 0x10);
                    lo = lo.lanewise(BITWISE_BLEND, bits.lanewise(LSHL, 4), 0xF0).and(31);
                    low = ((FloatVector) lo.convert(I2F, 0)).fma(FloatVector.fromArray(F, xs, e + h), low);
                    high = ((FloatVector) hi.convert(I2F, 0)).fma(FloatVector.fromArray(F, xs, e + 32 + h), high);
                }
                even = low.fma(FloatVector.broadcast(F, scales[2 * pair]), even);
                odd = high.fma(FloatVector.broadcast(F, scales[2 * pair + 1]), odd);
            }
        }
        var total = even.add(odd);
        total.withLane(0, total.lane(0) - minimums).intoArray(rows, at); // the minimums, summed in scalar code
    }

    /** [d·scale_0..7, dmin·min_0..7] of the Q4_K or Q5_K super-block at byte {@code w} (16 lanes). */
    private static FloatVector kScaleVector(MemorySegment ws, long w) {
        var header = (IntVector) ByteVector.fromMemorySegment(HEADER, ws, w, LE).castShape(INTS, 0);
        var values = header.rearrange(PICK_LOW).lanewise(LSHR, SHIFT_LOW).and(MASK_LOW)
                .or(header.rearrange(PICK_HIGH).lanewise(LSHR, 2).and(MASK_HIGH));
        float d = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w));
        float dmin = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w + 2));
        return ((FloatVector) values.convert(I2F, 0)).mul(FloatVector.broadcast(F, d).blend(dmin, MINIMUM_LANES));
    }

    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);

    /**
     * The scalar form of {@link #kScaleVector}, for eight lanes: scales[i] = d·scale_i for the super-block's 8
     * sub-blocks, and returns Σ_s dmin·min_s·xSums[sums + s]. The 12 bytes of 6-bit scales and minimums are read as
     * three words and cut apart four at a time: bytes 0-3 hold scales 0-3 and the top bits of scales 4-7, bytes 4-7
     * the same for minimums, and bytes 8-11 the low four bits of scales 4-7 (low nibbles) and of minimums 4-7 (high
     * nibbles).
     */
    private static float kScales(MemorySegment ws, long w, float[] xSums, int sums, float[] scales) {
        float d = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w));
        float dmin = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w + 2));
        int u0 = ws.get(INT_LE, w + 4), u1 = ws.get(INT_LE, w + 8), u2 = ws.get(INT_LE, w + 12);
        int scalesLow = u0 & 0x3F3F3F3F, minsLow = u1 & 0x3F3F3F3F;
        int scalesHigh = u2 & 0x0F0F0F0F | (u0 >>> 6 & 0x03030303) << 4;
        int minsHigh = u2 >>> 4 & 0x0F0F0F0F | (u1 >>> 6 & 0x03030303) << 4;
        float minimums = 0;
        for (int i = 0; i < 4; i++) {
            scales[i] = d * (scalesLow >>> 8 * i & 0xFF);
            scales[4 + i] = d * (scalesHigh >>> 8 * i & 0xFF);
            minimums += dmin * (minsLow >>> 8 * i & 0xFF) * xSums[sums + i]
                    + dmin * (minsHigh >>> 8 * i & 0xFF) * xSums[sums + 4 + i];
        }
        return minimums;
    }

    // ---- Q6_K: per 256 elements 4 low bits, 2 high bits, 16 signed 8-bit scales and an F16 d ----

    /**
     * x · w for one Q6_K row at byte {@code w0}. Per half super-block (128 elements) a row has 64 bytes of low bits
     * and 32 of high bits: byte l of the low bits holds element l in its low nibble and l + 64 in its high one (byte
     * l + 32: elements l + 32 and l + 96), and byte l of the high bits holds the top two bits of elements l, l + 32,
     * l + 64 and l + 96, from its lowest bits up. Code = those six bits − 32, one signed scale per 16 elements. Each
     * code is assembled in one bitwise blend (the two bits moved to bits 4-5 over the nibble); the scales, d·scale,
     * are decoded once per super-block. One row at a time and the Vector API called directly, as in
     * {@link #q4kDot} and for the same reasons.
     */
    private static void q6kDot(float[] xs, int k, MemorySegment ws, long w0, float[] scales, float[] rows, int at) {
        var a0 = FloatVector.zero(F);
        for (int c = 0; c < k; c += KQuants.SUPER_BLOCK, w0 += 210) {
            q6kScales(ws, w0, scales, 0);
            for (int half = 0; half < 2; half++) {
                int e = c + 128 * half;
                for (int l = 0; l < 32; l += LANES) {
                    var x1 = FloatVector.fromArray(F, xs, e + l);
                    var x2 = FloatVector.fromArray(F, xs, e + 32 + l);
                    var x3 = FloatVector.fromArray(F, xs, e + 64 + l);
                    var x4 = FloatVector.fromArray(F, xs, e + 96 + l);
                    // (code − 32)·x as code·x − 32·x in one FMA, exactly the same number: 32·x is exact
                    var m1 = x1.mul(-32);
                    var m2 = x2.mul(-32);
                    var m3 = x3.mul(-32);
                    var m4 = x4.mul(-32);
                    long low = 64L * half + l, high = 128 + 32L * half + l;
                    int s = 8 * half + l / 16; // the scale of elements e + l..: s, s + 2, s + 4, s + 6 for x1..x4
                    var p0 = (IntVector) ByteVector.fromMemorySegment(BYTES, ws, w0 + low, LE).castShape(INTS, 0);
                    var q0 = (IntVector) ByteVector.fromMemorySegment(BYTES, ws, w0 + low + 32, LE).castShape(INTS, 0);
                    var t0 = (IntVector) ByteVector.fromMemorySegment(BYTES, ws, w0 + high, LE).castShape(INTS, 0);
                    a0 = ((FloatVector) p0.lanewise(BITWISE_BLEND, t0.lanewise(LSHL, 4), 0x30).and(63)
                            .convert(I2F, 0)).fma(x1, m1).fma(FloatVector.broadcast(F, scales[s]), a0);
                    a0 = ((FloatVector) q0.lanewise(BITWISE_BLEND, t0.lanewise(LSHL, 2), 0x30).and(63)
                            .convert(I2F, 0)).fma(x2, m2).fma(FloatVector.broadcast(F, scales[s + 2]), a0);
                    a0 = ((FloatVector) p0.lanewise(LSHR, 4).lanewise(BITWISE_BLEND, t0, 0x30).and(63)
                            .convert(I2F, 0)).fma(x3, m3).fma(FloatVector.broadcast(F, scales[s + 4]), a0);
                    a0 = ((FloatVector) q0.lanewise(LSHR, 4).lanewise(BITWISE_BLEND, t0.lanewise(LSHR, 2), 0x30).and(63)
                            .convert(I2F, 0)).fma(x4, m4).fma(FloatVector.broadcast(F, scales[s + 6]), a0);
                }
            }
        }
        a0.intoArray(rows, at);
    }

    /** The mantissa bits that take a Q6_K code's low four bits (17-20) and its top two (21-22): 1 + code/64. */
    private static final int LOW_FOUR = 0x001E0000, TOP_TWO = 0x00600000;
    /** Per half super-block h: its 32 bytes of high bits (int lanes 8h..8h+7 of the 64) in both halves of a vector. */
    private static final VectorShuffle<Integer>[] HIGH_BITS = VECTOR_SCALES
            ? new VectorShuffle[] {twice(0), twice(8)} : null;
    /** Lanes 8-15 read the high bits of ql bytes 32-63, two bits up in their qh byte: shifted down to match. */
    private static final IntVector SECOND_QUARTER = VECTOR_SCALES
            ? ints(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2) : null;
    /** Per half super-block h: the scales of its low nibbles' 16-element groups and of its high nibbles', 4 lanes each. */
    private static final VectorShuffle<Float>[] Q6K_LOW_SCALES = VECTOR_SCALES
            ? new VectorShuffle[] {quarters(0), quarters(8)} : null;
    private static final VectorShuffle<Float>[] Q6K_HIGH_SCALES = VECTOR_SCALES
            ? new VectorShuffle[] {quarters(4), quarters(12)} : null;

    private static VectorShuffle<Integer> twice(int first) {
        int[] lanes = new int[16];
        for (int i = 0; i < 16; i++) {
            lanes[i] = first + i % 8;
        }
        return VectorShuffle.fromArray(INTS, lanes, 0);
    }

    private static VectorShuffle<Float> quarters(int first) {
        int[] lanes = new int[16];
        for (int i = 0; i < 16; i++) {
            lanes[i] = first + i / 4;
        }
        return VectorShuffle.fromArray(F, lanes, 0);
    }

    /**
     * x · w for one Q6_K row at byte {@code w}, 16 lanes, as {@link #q4kPlaneDot} reads Q4_K: per half super-block the
     * 64 bytes of low bits are loaded as 16 int lanes, and each nibble position becomes a float from its four low bits
     * and the two high bits of its code (shifted from the matching byte of the high bits, copied into both halves of
     * a vector) blended into 1.0's mantissa: v = 1 + code/64, two shifts and two blends where {@link #q6kDot} takes
     * about twice the vector operations. (code − 32)·x = 64·v·x − 96·x: the sums of x over each 16-element group of a
     * scale are computed once per call, and their term once per super-block.
     */
    private static void q6kPlaneDot(float[] xq, float[] xSums, int k, MemorySegment ws, long w, float[] rows, int at) {
        var low = FloatVector.zero(F);
        var high = low;
        var minimums = low;
        var one = IntVector.broadcast(INTS, ONE_BITS);
        for (int c = 0; c < k; c += KQuants.SUPER_BLOCK, w += 210) {
            float d = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w + 208));
            var scales = widen(ByteVector.fromMemorySegment(BYTES, ws, w + 192, LE)).mul(d);
            minimums = scales.fma(FloatVector.fromArray(F, xSums, c / 16), minimums);
            var allHigh = IntVector.fromMemorySegment(INTS, ws, w + 128, LE);
            for (int h = 0; h < 2; h++) {
                var q = IntVector.fromMemorySegment(INTS, ws, w + 64L * h, LE);
                var t = allHigh.rearrange(HIGH_BITS[h]).lanewise(LSHR, SECOND_QUARTER);
                int e = c + 128 * h;
                // nibble n of each word: bits 4n..4n+3 to 17-20, and its two high bits (bits 8·(n/2) + 4·(n % 2) of
                // the high word) to 21-22; even n are low nibbles, odd n high ones
                var lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 17), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 21), TOP_TWO).reinterpretAsFloats())
                        .mul(FloatVector.fromArray(F, xq, e));
                var hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 13), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 17), TOP_TWO).reinterpretAsFloats())
                        .mul(FloatVector.fromArray(F, xq, e + 16));
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 9), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 13), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 32), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 5), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 9), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 48), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHL, 1), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 5), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 64), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 3), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHL, 1), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 80), hi);
                lo = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 7), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHR, 3), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 96), lo);
                hi = ((FloatVector) one.lanewise(BITWISE_BLEND, q.lanewise(LSHR, 11), LOW_FOUR)
                        .lanewise(BITWISE_BLEND, t.lanewise(LSHR, 7), TOP_TWO).reinterpretAsFloats())
                        .fma(FloatVector.fromArray(F, xq, e + 112), hi);
                low = lo.fma(scales.rearrange(Q6K_LOW_SCALES[h]), low);
                high = hi.fma(scales.rearrange(Q6K_HIGH_SCALES[h]), high);
            }
        }
        low.add(high).mul(64).sub(minimums.mul(96)).intoArray(rows, at);
    }

    /**
     * x reordered for {@link #q6kPlaneDot}: per super-block and half h, plane n holds in lane i the element whose low
     * bits are nibble n of word i of the half's 64 bytes: byte l = 4·(i % 8) + n/2 of its first or second 32
     * (i &lt; 8 or not), which codes element l (+ 32 for the second) in its low nibble and that + 64 in its high one.
     */
    static float[] q6kPlaneOrder(float[] xs, int k) {
        float[] out = new float[k];
        for (int c = 0; c < k; c += KQuants.SUPER_BLOCK) {
            for (int h = 0; h < 2; h++) {
                for (int n = 0; n < 8; n++) {
                    for (int i = 0; i < 16; i++) {
                        int l = 4 * (i % 8) + n / 2;
                        out[c + 128 * h + 16 * n + i] = xs[c + 128 * h + l + 32 * (i / 8) + 64 * (n % 2)];
                    }
                }
            }
        }
        return out;
    }

    /** The sums of x over each 16 elements (the span of a Q6_K scale), in order. */
    private static float[] q6kGroupSums(float[] xs, int k) {
        float[] out = new float[k / 16];
        for (int g = 0; g < out.length; g++) {
            float sum = 0;
            for (int i = 0; i < 16; i++) {
                sum += xs[16 * g + i];
            }
            out[g] = sum;
        }
        return out;
    }

    /** scales[at + i] = d·scale_i for the 16 signed scales of the Q6_K super-block at byte {@code w}. */
    private static void q6kScales(MemorySegment ws, long w, float[] scales, int at) {
        float d = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, w + 208));
        for (int i = 0; i < 16; i += LANES) {
            widen(ByteVector.fromMemorySegment(BYTES, ws, w + 192 + i, LE)).mul(d).intoArray(scales, at + i);
        }
    }

    /**
     * LANES bytes read from memory, zero-extended to int lanes: nibbles and bit fields are cut out in int lanes,
     * which x86 shifts natively (byte lanes have no shift instructions, and C2 then fell back to Java code).
     */
    static IntVector unsignedBytes(MemorySegment ws, long at) {
        return ((IntVector) ByteVector.fromMemorySegment(BYTES, ws, at, LE).convertShape(VectorOperators.B2I, INTS, 0))
                .and(0xFF);
    }

    /**
     * LANES Q6_K codes as floats: (nibble of the low byte at {@code lowShift} | the two bits of the high byte at
     * {@code highShift}, moved to bits 4-5) − 32.
     */
    static FloatVector q6kCodes(MemorySegment ws, long low, long high, int lowShift, int highShift) {
        var codes = unsignedBytes(ws, low).lanewise(VectorOperators.LSHR, lowShift).and(0x0F)
                .or(unsignedBytes(ws, high).lanewise(VectorOperators.LSHR, highShift).and(3)
                        .lanewise(VectorOperators.LSHL, 4));
        return floats(codes.sub(32));
    }

    static FloatVector floats(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    // ---- Q4_0 and MXFP4: 32 elements per block, element j in the low nibble of byte j, j + 16 in its high one ----

    /** x · w for one Q4_0 row at byte {@code w}: per block, the F16 scale times Σ (code − 8)·x. */
    private static void q4Dot(float[] xs, int k, MemorySegment ws, long w, float[] rows, int at) {
        var acc = FloatVector.zero(F);
        for (int c = 0; c < k; c += 32, w += 18) {
            var s = FloatVector.zero(F);
            for (int h = 0; h < 16; h += LANES) {
                var bytes = unsignedBytes(ws, w + 2 + h);
                s = floats(bytes.and(0x0F).sub(8)).fma(x(xs, c + h), s);
                s = floats(bytes.lanewise(VectorOperators.LSHR, 4).sub(8)).fma(x(xs, c + 16 + h), s);
            }
            acc = s.fma(scale(ws, w), acc);
        }
        acc.intoArray(rows, at);
    }

    /** MXFP4's doubled E2M1 values, indexed by code (16 lanes: one table register). */
    static final FloatVector MXFP4_VALUES = LANES == 16 ? mxfp4Values() : null;

    private static FloatVector mxfp4Values() {
        float[] v = new float[16];
        for (int i = 0; i < 16; i++) {
            v[i] = dev.moe4j.core.quant.Mxfp4Codec.value(i);
        }
        return FloatVector.fromArray(F, v, 0);
    }

    /** MXFP4 codes as their doubled E2M1 values, looked up in a register (16 lanes only). */
    static FloatVector mxfp4(IntVector codes) {
        return floats(codes).selectFrom(MXFP4_VALUES);
    }

    /** x · w for one MXFP4 row at byte {@code w}: per block, 2^(e−128) times Σ value(code)·x. */
    private static void mxfp4Dot(float[] xs, int k, MemorySegment ws, long w, float[] rows, int at) {
        var acc = FloatVector.zero(F);
        for (int c = 0; c < k; c += 32, w += 17) {
            var bytes = unsignedBytes(ws, w + 1);
            var s = mxfp4(bytes.and(0x0F)).mul(x(xs, c));
            s = mxfp4(bytes.lanewise(VectorOperators.LSHR, 4)).fma(x(xs, c + 16), s);
            float d = dev.moe4j.core.quant.Mxfp4Codec.halfScale(ws.get(ValueLayout.JAVA_BYTE, w) & 0xFF);
            acc = s.fma(broadcast(d), acc);
        }
        acc.intoArray(rows, at);
    }

    // ---- F8_E4M3_B32: an F32 scale, then 32 E4M3 codes ----

    /** x · w for one F8_E4M3_B32 row at byte {@code w}: per block, its scale times Σ e4m3(code)·x. */
    private static void e4m3Dot(float[] xs, int k, MemorySegment ws, long w, float[] rows, int at) {
        var acc = FloatVector.zero(F);
        for (int c = 0; c < k; c += 32, w += 36) {
            var s = FloatVector.zero(F);
            for (int h = 0; h < 32; h += LANES) {
                s = e4m3(ws, w + 4 + h).fma(x(xs, c + h), s);
            }
            acc = s.fma(broadcast(ws.get(ValueLayout.JAVA_FLOAT_UNALIGNED, w)), acc);
        }
        acc.intoArray(rows, at);
    }

    /**
     * LANES E4M3 codes as floats: the code's four exponent and three mantissa bits become a float's lowest exponent
     * and highest mantissa bits, whose value is the code's times 2^-120 (its subnormals landing on float's), and one
     * exact multiplication by 2^120 puts it right. The NaN codes, which loading refuses, would read as ±480.
     */
    static FloatVector e4m3(MemorySegment ws, long at) {
        var codes = unsignedBytes(ws, at);
        var bits = codes.and(0x7F).lanewise(VectorOperators.LSHL, 20)
                .or(codes.and(0x80).lanewise(VectorOperators.LSHL, 24));
        return ((FloatVector) bits.reinterpretAsFloats()).mul(0x1p120f);
    }

    /** LANES signed byte codes read from memory, widened to floats. */
    static FloatVector signedCodes(MemorySegment ws, long at) {
        return widen(ByteVector.fromMemorySegment(BYTES, ws, at, LE));
    }

    /** Byte lanes widened to float lanes (as signed bytes). */
    static FloatVector widen(ByteVector bytes) {
        return (FloatVector) bytes.convertShape(VectorOperators.B2F, F, 0);
    }

    private static FloatVector x(float[] xs, int at) {
        return FloatVector.fromArray(F, xs, at);
    }

    private static FloatVector broadcast(float v) {
        return FloatVector.broadcast(F, v);
    }

    /** A block's F16 scale, broadcast. */
    private static FloatVector scale(MemorySegment ws, long at) {
        return FloatVector.broadcast(F, Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, at)));
    }
}
