package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.I;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Matrix products in the checkpoint layout: weights are [out, in], so the forward pass is y = x·Wᵀ. Activations
 * and gradients are F32; weights may be F32, BF16 or F16 and are widened to F32 in registers, accumulating in
 * F32. The forward pass also reads ggml's block-quantised weights (Q8_0, Q4_K, ...) as they are stored, decoding
 * a few rows or a packing panel at a time ({@link BlockDecode}).
 *
 * <p>Two regimes. With few rows (decode, or an expert that got a handful of tokens) a product is bound by
 * reading the weight once: the skinny paths stream W row by row with every row of x against it, widening in
 * registers and splitting W over threads. With 512-bit vectors the same path serves up to {@link #TILE_ROWS}
 * rows (BF16 weights {@link #TILE_ROWS_BF16}), as 4 × 4 register tiles of dot products over k. With many rows it is
 * bound by FMAs: {@link Gemm} packs W into panels and runs a register-tiled micro-kernel. The gradients use the same two regimes, as the transposed
 * products they are (dx = dy·W, dW = dyᵀ·x).
 */
public final class MatMul {
    /**
     * Up to this many rows the weight-streaming paths win over packing the weight (measured on Zen 4: the
     * forward streams W once for all rows; the gradients' streaming forms touch dx or dW once per row group, so
     * packing wins earlier for them).
     */
    static final int SKINNY_ROWS = 16;
    static final int SKINNY_GRADIENT_ROWS = 4;
    /**
     * Where vectors are 512 bits (32 registers), the weight-streaming path takes four rows of x per pass through a
     * group of four weight rows (16 accumulators); with 16 registers (AVX2) it takes two.
     */
    static final boolean TILES = LANES == 16;
    /**
     * With those 4 × 4 tiles, up to this many rows streaming W beats packing it: no copy of W is made, and a
     * quantised row is decoded once for all rows of x. Measured on Zen 4 (`bench matmul --size 1024`, one thread),
     * % of the FMA peak, tiles against packing: 32 rows F32 76 / 58, BF16 74 / 61, Q8_0 71 / 47, Q4_K 59 / 43; 64 rows
     * 78 / 68, 78 / 67, 72 / 52, 66 / 50; at 512 rows packing wins (BF16 85 against 68).
     *
     * <p>Packing a BF16 weight widens every element, which at 65-128 rows costs about as much as the micro-kernel's
     * FMAs (a BF16 prefill's JFR profile: 200 of 440 samples under Gemm went to the widening), so BF16 weights take
     * the tiles up to {@link #TILE_ROWS_BF16} rows: at 128 rows (`--size 4096`, two threads) tiles against packing
     * read 80-83 / 71-77 % of the peak, and the BF16 Mixtral-shaped model's prefill of 128 tokens (attention
     * projections of 128 rows, experts of up to about 80) went from 252 to 301-310 tokens/s (medians, two threads).
     * For Q8_0 the same change measured slower in that model's prefill (250-256 against 150-206 tokens/s), for Q4_K
     * within the noise, and F32's packing is a copy: they keep 64.
     */
    static final int TILE_ROWS = 64;
    static final int TILE_ROWS_BF16 = 128;

    private MatMul() {
    }

    /** out[n, m] = x[n, k] · w[m, k]ᵀ. */
    public static void forward(Tensor out, Tensor x, Tensor w) {
        int n = x.rows(), k = x.cols(), m = w.rows();
        check(w.cols() == k && out.rows() == n && out.cols() == m, "forward", out, x, w);
        Checks.requireF32("MatMul.forward", out, x);
        if (!w.dtype().isBlockQuantized()) {
            Checks.requireWeight("MatMul.forward", w);
        } else if (k % w.dtype().blockElements() != 0) {
            throw new IllegalArgumentException("MatMul.forward: rows of " + w + " are not whole blocks");
        }
        if (n <= SKINNY_ROWS || TILES && n <= tileRows(w.dtype()) && k % (2 * LANES) == 0 && w.dtype() != DType.F16) {
            skinnyForward(out, x, w, n, k, m);
            return;
        }
        var a = Gemm.heapFloats(x.segment());
        Gemm.multiply(new Gemm.Operands(a.array(), a.offset(), k, 1, w.segment(), w.dtype(), k, true,
                out.segment(), m), n, m, k, false);
    }

    /** Up to how many rows of x the 4 × 4 tiles stream a weight of this type rather than pack it. */
    static int tileRows(DType weight) {
        return weight == DType.BF16 ? TILE_ROWS_BF16 : TILE_ROWS;
    }

    /**
     * out[n, m] = x[n, k] · w[k, m] for a weight stored [in, out] (gpt-oss's stacked experts): the same product
     * as {@link #backwardInput}, under the name a forward pass reads naturally.
     */
    public static void multiply(Tensor out, Tensor x, Tensor w) {
        backwardInput(out, x, w, false);
    }

    /** dx[n, k] = dy[n, m] · w[m, k], added to dx when {@code accumulate}. */
    public static void backwardInput(Tensor dx, Tensor dy, Tensor w, boolean accumulate) {
        int n = dy.rows(), m = dy.cols(), k = w.cols();
        check(w.rows() == m && dx.rows() == n && dx.cols() == k, "backwardInput", dx, dy, w);
        Checks.requireF32("MatMul.backwardInput", dx, dy);
        Checks.requireWeight("MatMul.backwardInput", w);
        if (n <= SKINNY_GRADIENT_ROWS) {
            skinnyBackwardInput(dx, dy, w, n, m, k, accumulate);
            return;
        }
        var a = Gemm.heapFloats(dy.segment());
        Gemm.multiply(new Gemm.Operands(a.array(), a.offset(), m, 1, w.segment(), w.dtype(), k, false,
                dx.segment(), k), n, k, m, accumulate);
    }

    /** dw[m, k] = dy[n, m]ᵀ · x[n, k], added to dw when {@code accumulate}. dw is F32. */
    public static void backwardWeight(Tensor dw, Tensor dy, Tensor x, boolean accumulate) {
        int n = dy.rows(), m = dy.cols(), k = x.cols();
        check(x.rows() == n && dw.rows() == m && dw.cols() == k, "backwardWeight", dw, dy, x);
        Checks.requireF32("MatMul.backwardWeight", dw, dy, x);
        if (n <= SKINNY_GRADIENT_ROWS) {
            skinnyBackwardWeight(dw, dy, x, n, m, k, accumulate);
            return;
        }
        // A = dyᵀ: element (j, i) = dy[i, j], so rows of A step by 1 and columns by m.
        var a = Gemm.heapFloats(dy.segment());
        Gemm.multiply(new Gemm.Operands(a.array(), a.offset(), 1, m, x.segment(), DType.F32, k, false,
                dw.segment(), k), m, k, n, accumulate);
    }

    // ---- forward with few rows: stream W once, four rows at a time ----

    private static void skinnyForward(Tensor out, Tensor x, Tensor w, int n, int k, int m) {
        MemorySegment xs = x.segment(), ws = w.segment(), os = out.segment();
        DType wt = w.dtype();
        if (n == 1 && BlockDots.handles(wt)) {
            BlockDots.decode(xs, k, m, wt, ws, os);
            return;
        }
        if (n == 1 && wt != DType.F16 && !wt.isBlockQuantized()) {
            decode(xs, k, m, wt, ws, os);
            return;
        }
        int groups = (m + 3) / 4;
        // BF16 weights against two rows of x at a time read a word (two weights) per lane: x split into its even and
        // odd elements once here, for every row group (see Bf16Pairs)
        var xh = Gemm.heapFloats(xs); // see dots8BF16: x's loads from an array keep their checks out of the loops
        float[] pairs = wt == DType.BF16 && n >= 2 && k % (2 * LANES) == 0
                ? Bf16Pairs.split(xh.array(), xh.offset(), n, k) : null;
        // Enough W rows per task that splitting pays: about 256 KiB of weights.
        int minGroups = (int) Math.max(1, (1 << 18) / Math.max(1, 4 * wt.byteCount(k)));
        Parallel.forRange(groups, minGroups, (from, to) -> {
            float[] sums = new float[TILES ? 8 * LANES : LANES];
            float[] tile = TILES ? new float[16 * LANES] : null;
            // F16's conversion is long: C2 stops inlining it after a few copies in one method (the rest would
            // box every vector), so F16 rows go two at a time, and with several rows of x they are widened
            // once into a scratch rather than once per row of x. Block-quantised rows are always decoded into
            // the scratch: the F32 kernels then read four decoded rows from cache.
            boolean decoded = wt.isBlockQuantized() || wt == DType.F16 && n > 2;
            float[] scratch = decoded ? new float[4 * k] : null;
            MemorySegment scratchSegment = scratch == null ? null : MemorySegment.ofArray(scratch);
            long rowBytes = wt.byteCount(k);
            for (int g = from; g < to; g++) {
                int j = 4 * g, rows = Math.min(4, m - j);
                MemorySegment src = ws;
                DType type = wt;
                long base = (long) j * k;
                if (scratch != null) {
                    if (wt.isBlockQuantized()) {
                        for (int r = 0; r < rows; r++) {
                            BlockDecode.decode(wt, ws, (j + r) * rowBytes, 0, scratch, r * k, k);
                        }
                    } else {
                        Widening.widen(DType.F16, ws, base, scratch, 0, rows * k);
                    }
                    src = scratchSegment;
                    type = DType.F32;
                    base = 0;
                }
                long w0 = base, w1 = rows > 1 ? base + k : base, w2 = rows > 2 ? base + 2L * k : base, w3 = rows > 3 ? base + 3L * k : base;
                // Every row of x against the same four weight rows: the first pass reads them from memory,
                // the others from cache.
                int i = 0;
                if (type == DType.F16) {
                    for (; i < n; i++) {
                        dots2(xs, (long) i * k, k, src, w0, w1, Math.min(rows, 2), os, (long) i * m + j, sums);
                        if (rows > 2) {
                            dots2(xs, (long) i * k, k, src, w2, w3, rows - 2, os, (long) i * m + j + 2, sums);
                        }
                    }
                } else if (type == DType.BF16) {
                    if (pairs != null) {
                        for (; TILES && n - i >= 3; i += Math.min(4, n - i)) {
                            tile4x4BF16Pairs(pairs, i * k, Math.min(4, n - i), k, src, w0, w1, w2, w3, rows, os,
                                    (long) i * m + j, m, tile);
                        }
                        for (; i + 2 <= n; i += 2) {
                            dots2x4BF16Pairs(pairs, i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, m, sums);
                        }
                    }
                    for (; i + 2 <= n; i += 2) {
                        dots2x4BF16(xh.array(), xh.offset() + i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, m, sums);
                    }
                    if (i < n) {
                        dots1BF16(xh.array(), xh.offset() + i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, sums);
                    }
                } else {
                    if (TILES && scratch != null && k % LANES == 0) {
                        int d1 = rows > 1 ? k : 0, d2 = rows > 2 ? 2 * k : 0, d3 = rows > 3 ? 3 * k : 0;
                        for (; i + 4 <= n; i += 4) {
                            tile4x4Decoded(xh.array(), xh.offset() + i * k, k, scratch, 0, d1, d2, d3, rows, os, (long) i * m + j, m, tile);
                        }
                    } else if (TILES && k % LANES == 0) {
                        for (; i + 4 <= n; i += 4) {
                            tile4x4F32(xh.array(), xh.offset() + i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, m, tile);
                        }
                    }
                    for (; i + 2 <= n; i += 2) {
                        dots2x4F32(xh.array(), xh.offset() + i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, m, sums);
                    }
                    if (i < n) {
                        dots1F32(xh.array(), xh.offset() + i * k, k, src, w0, w1, w2, w3, rows, os, (long) i * m + j, sums);
                    }
                }
            }
        });
    }

    /**
     * One row of x (decode). Long weight rows go eight per pass, so that each thread keeps eight streams from memory
     * in flight (four left 10-25% of the bandwidth unused). Short rows go one at a time ({@link #oneRowAtATime}).
     */
    private static void decode(MemorySegment xs, int k, int m, DType wt, MemorySegment ws, MemorySegment os) {
        // x as a Java array: its loads' bounds checks are the ones C2 lifts out of the loop
        var xh = Gemm.heapFloats(xs);
        if (oneRowAtATime(wt, k)) {
            int minRows = Math.max(1, (1 << 18) / (k * wt.byteSize()));
            Parallel.forRangeBalanced(m, minRows, (from, to) -> {
                float[] rows = Lanes.rowBuffer();
                for (int r = from; r < to; r++) {
                    int slot = (r - from) % Lanes.ROW_GROUP;
                    long w = (long) r * k;
                    if (wt == DType.F32) {
                        dotF32(xh.array(), xh.offset(), k, ws, w, rows, slot * LANES);
                    } else {
                        dotBF16(xh.array(), xh.offset(), k, ws, w, rows, slot * LANES);
                    }
                    if (slot == Lanes.ROW_GROUP - 1 || r == to - 1) {
                        storeRows(xh.array(), xh.offset(), k, wt, ws, rows, slot + 1, os, r - slot);
                    }
                }
            });
            return;
        }
        int groups = (m + 7) / 8;
        int minGroups = Math.max(1, (1 << 18) / Math.max(1, 8 * k * wt.byteSize()));
        Parallel.forRangeBalanced(groups, minGroups, (from, to) -> {
            float[] sums = new float[LANES];
            for (int g = from; g < to; g++) {
                int j = 8 * g, rows = Math.min(8, m - j);
                long base = (long) j * k;
                if (rows == 8) {
                    if (wt == DType.F32) {
                        dots8F32(xh.array(), xh.offset(), k, ws, base, os, j, sums);
                    } else {
                        dots8BF16(xh.array(), xh.offset(), k, ws, base, os, j, sums);
                    }
                    continue;
                }
                for (int q = 0; q < rows; q += 4) {
                    int r = Math.min(4, rows - q);
                    long w0 = base + (long) q * k, w1 = r > 1 ? w0 + k : w0, w2 = r > 2 ? w0 + 2L * k : w0, w3 = r > 3 ? w0 + 3L * k : w0;
                    if (wt == DType.F32) {
                        dots1F32(xh.array(), xh.offset(), k, ws, w0, w1, w2, w3, r, os, j + q, sums);
                    } else {
                        dots1BF16(xh.array(), xh.offset(), k, ws, w0, w1, w2, w3, r, os, j + q, sums);
                    }
                }
            }
        });
    }

    /**
     * Whether decode reads the weight rows one at a time: then a thread's rows come from memory as one sequential
     * stream, where eight short rows side by side are eight streams too short for the prefetchers to follow. On the
     * 2-core AMD EPYC (Zen 4), one thread, weights from memory (`bench matmul --threads 1`, best calls, 2026-12-07
     * evening): BF16 rows of 3584 (7 KiB) read 24-25 GB/s one at a time against 20 eight side by side, of 4096 (8 KiB)
     * 23 against 18-21; F32 rows of 1024 (4 KiB) 30-31 against 20-21, but of 2048 (8 KiB) 11-12 against 19 and of
     * 3584 12 against 19-20. End to end on the Mixtral-shaped model, one thread: F32 25.2-27.3 tokens/s against
     * 17.4-20.3, BF16 40.6-44.2 against 37.6-41.5. (Earlier figures, in a harness, had BF16 rows of 3584 and F32 rows
     * of 1024 the other way round; this machine no longer reproduces them.)
     */
    static boolean oneRowAtATime(DType wt, int k) {
        return (long) k * wt.byteSize() <= (wt == DType.BF16 ? 8192 : 4096);
    }

    /**
     * The F32 weight row at element w times x, whole vectors of it, into rows[at ..] (one accumulator, a vector at a
     * time): the order of the other few-rows kernels, so that a row of x gets the same bits whichever path it takes
     * (one sequence decoded alone, or beside others). {@link #storeRows} reduces it and adds the scalar tail.
     */
    private static void dotF32(float[] x, int xOff, int k, MemorySegment ws, long w, float[] rows, int at) {
        var a = FloatVector.zero(F);
        for (int c = 0, bound = F.loopBound(k); c < bound; c += LANES) {
            a = Widening.f32(ws, w + c).fma(FloatVector.fromArray(F, x, xOff + c), a);
        }
        a.intoArray(rows, at);
    }

    /**
     * Row r's sum, for the {@code count} rows from {@code first} whose accumulators {@link #dotF32} or
     * {@link #dotBF16} stored in {@code rows}: reduced together, then each row's scalar tail (past the last whole
     * vector) added in order.
     */
    private static void storeRows(float[] x, int xOff, int k, DType wt, MemorySegment ws, float[] rows, int count,
                                  MemorySegment os, long first) {
        Lanes.reduceRows(rows, count);
        for (int i = 0; i < count; i++) {
            float sum = rows[i];
            for (int c = F.loopBound(k); c < k; c++) {
                sum += x[xOff + c] * Widening.scalar(wt, ws, (first + i) * k + c);
            }
            setF32(os, first + i, sum);
        }
    }

    /**
     * As {@link #dotF32} for a BF16 weight row, in two accumulators (even and odd vectors). A vector of BF16 weights
     * is 32 bytes, so one chain of FMAs (4 cycles each on Zen 4) would read at most 8 bytes a cycle, about 24 GB/s at
     * 3 GHz: the bandwidth of one core. BF16 rows of x in twos and fours sum in another order anyway (their kernels
     * read word pairs, {@link Bf16Pairs}).
     */
    private static void dotBF16(float[] x, int xOff, int k, MemorySegment ws, long w, float[] rows, int at) {
        var a = FloatVector.zero(F);
        var b = a;
        int c = 0;
        for (int bound = k - 2 * LANES; c <= bound; c += 2 * LANES) {
            a = Widening.bf16(ws, w + c).fma(FloatVector.fromArray(F, x, xOff + c), a);
            b = Widening.bf16(ws, w + c + LANES).fma(FloatVector.fromArray(F, x, xOff + c + LANES), b);
        }
        if (c + LANES <= k) {
            a = Widening.bf16(ws, w + c).fma(FloatVector.fromArray(F, x, xOff + c), a);
        }
        a.add(b).intoArray(rows, at);
    }

    // The kernels below come in one copy per weight type, each loop holding a single conversion: a loop that
    // could meet several types grows past C2's inlining budget once a JVM has seen them all, and then boxes.

    /** out[outBase + q] = x·w_q for the four F32 weight rows starting at w0..w3; q < wr are stored. */
    private static void dots1F32(float[] x, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                 long w3, int wr, MemorySegment os, long outBase, float[] sums) {
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        var a2 = a0;
        var a3 = a0;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = Widening.f32(ws, w0 + c).fma(xv, a0);
            a1 = Widening.f32(ws, w1 + c).fma(xv, a1);
            a2 = Widening.f32(ws, w2 + c).fma(xv, a2);
            a3 = Widening.f32(ws, w3 + c).fma(xv, a3);
        }
        storeSums(x, xBase, k, DType.F32, ws, w0, wr, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
    }

    /**
     * Two rows of x (from xBase, the second k further) against the four F32 weight rows at w0..w3: each weight
     * vector is loaded (and widened) once for both; element (r, q) goes to outBase + r·ldo + q.
     */
    private static void dots2x4F32(float[] x, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                   long w3, int wr, MemorySegment os, long outBase, int ldo, float[] sums) {
        int x1 = xBase + k;
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var v0 = Widening.f32(ws, w0 + c);
            var v1 = Widening.f32(ws, w1 + c);
            var v2 = Widening.f32(ws, w2 + c);
            var v3 = Widening.f32(ws, w3 + c);
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            xv = FloatVector.fromArray(F, x, x1 + c);
            b0 = v0.fma(xv, b0);
            b1 = v1.fma(xv, b1);
            b2 = v2.fma(xv, b2);
            b3 = v3.fma(xv, b3);
        }
        if (TILES) {
            // the eight sums reduced together (sums holds eight vectors there), as in dots2x4BF16Pairs
            a0.intoArray(sums, 0);
            a1.intoArray(sums, LANES);
            a2.intoArray(sums, 2 * LANES);
            a3.intoArray(sums, 3 * LANES);
            b0.intoArray(sums, 4 * LANES);
            b1.intoArray(sums, 5 * LANES);
            b2.intoArray(sums, 6 * LANES);
            b3.intoArray(sums, 7 * LANES);
            Lanes.sums(sums, 8);
            storeSums(x, xBase, k, DType.F32, ws, w0, wr, os, outBase, c, sums[0], sums[1], sums[2], sums[3]);
            storeSums(x, x1, k, DType.F32, ws, w0, wr, os, outBase + ldo, c, sums[4], sums[5], sums[6], sums[7]);
            return;
        }
        storeSums(x, xBase, k, DType.F32, ws, w0, wr, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
        storeSums(x, x1, k, DType.F32, ws, w0, wr, os, outBase + ldo, c, Lanes.sum(b0, sums),
                Lanes.sum(b1, sums), Lanes.sum(b2, sums), Lanes.sum(b3, sums));
    }

    /** out[outBase + q] = x·w_q for the four BF16 weight rows starting at w0..w3; q < wr are stored. */
    private static void dots1BF16(float[] x, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                 long w3, int wr, MemorySegment os, long outBase, float[] sums) {
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        var a2 = a0;
        var a3 = a0;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = Widening.bf16(ws, w0 + c).fma(xv, a0);
            a1 = Widening.bf16(ws, w1 + c).fma(xv, a1);
            a2 = Widening.bf16(ws, w2 + c).fma(xv, a2);
            a3 = Widening.bf16(ws, w3 + c).fma(xv, a3);
        }
        storeSums(x, xBase, k, DType.BF16, ws, w0, wr, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
    }

    /**
     * Two rows of x (from xBase, the second k further) against the four BF16 weight rows at w0..w3: each weight
     * vector is loaded (and widened) once for both; element (r, q) goes to outBase + r·ldo + q.
     */
    private static void dots2x4BF16(float[] x, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                   long w3, int wr, MemorySegment os, long outBase, int ldo, float[] sums) {
        int x1 = xBase + k;
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var v0 = Widening.bf16(ws, w0 + c);
            var v1 = Widening.bf16(ws, w1 + c);
            var v2 = Widening.bf16(ws, w2 + c);
            var v3 = Widening.bf16(ws, w3 + c);
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            xv = FloatVector.fromArray(F, x, x1 + c);
            b0 = v0.fma(xv, b0);
            b1 = v1.fma(xv, b1);
            b2 = v2.fma(xv, b2);
            b3 = v3.fma(xv, b3);
        }
        storeSums(x, xBase, k, DType.BF16, ws, w0, wr, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
        storeSums(x, x1, k, DType.BF16, ws, w0, wr, os, outBase + ldo, c, Lanes.sum(b0, sums),
                Lanes.sum(b1, sums), Lanes.sum(b2, sums), Lanes.sum(b3, sums));
    }

    /**
     * {@link #dots2x4BF16} reading each 32-bit word of the weights as two BF16 values at once ({@link Bf16Pairs}):
     * one shift and one mask turn a vector of words into the even and the odd weights as floats, where widening
     * takes a conversion and a shift per half, so each FMA needs fewer operations beside it; the rows of x come split
     * to match (row r at xBase + r·k: its even elements, then its odd ones). Measured on Zen 4 with 512-bit vectors:
     * 1.4-2x the widening kernel's speed at two rows of x, and about 1.3-1.4x the aggregate tokens/s of 16 sequences
     * decoded together on make-model's default; with one row (decode) it was not faster, so decode keeps widening.
     */
    private static void dots2x4BF16Pairs(float[] xp, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                         long w3, int wr, MemorySegment os, long outBase, int ldo, float[] sums) {
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        int half = k / 2, x1 = xBase + k;
        var high = Bf16Pairs.HIGH;
        for (int c = 0; c < half; c += LANES) {
            var ws0 = Bf16Pairs.words(ws, 2 * w0 + 4L * c);
            var ws1 = Bf16Pairs.words(ws, 2 * w1 + 4L * c);
            var ws2 = Bf16Pairs.words(ws, 2 * w2 + 4L * c);
            var ws3 = Bf16Pairs.words(ws, 2 * w3 + 4L * c);
            var e0 = Bf16Pairs.even(ws0);
            var e1 = Bf16Pairs.even(ws1);
            var e2 = Bf16Pairs.even(ws2);
            var e3 = Bf16Pairs.even(ws3);
            var x = FloatVector.fromArray(F, xp, xBase + c);
            a0 = e0.fma(x, a0);
            a1 = e1.fma(x, a1);
            a2 = e2.fma(x, a2);
            a3 = e3.fma(x, a3);
            x = FloatVector.fromArray(F, xp, x1 + c);
            b0 = e0.fma(x, b0);
            b1 = e1.fma(x, b1);
            b2 = e2.fma(x, b2);
            b3 = e3.fma(x, b3);
            var o0 = Bf16Pairs.odd(ws0, high);
            var o1 = Bf16Pairs.odd(ws1, high);
            var o2 = Bf16Pairs.odd(ws2, high);
            var o3 = Bf16Pairs.odd(ws3, high);
            x = FloatVector.fromArray(F, xp, xBase + half + c);
            a0 = o0.fma(x, a0);
            a1 = o1.fma(x, a1);
            a2 = o2.fma(x, a2);
            a3 = o3.fma(x, a3);
            x = FloatVector.fromArray(F, xp, x1 + half + c);
            b0 = o0.fma(x, b0);
            b1 = o1.fma(x, b1);
            b2 = o2.fma(x, b2);
            b3 = o3.fma(x, b3);
        }
        if (TILES) {
            // the eight sums reduced together (sums holds eight vectors there), as the tiles reduce theirs
            a0.intoArray(sums, 0);
            a1.intoArray(sums, LANES);
            a2.intoArray(sums, 2 * LANES);
            a3.intoArray(sums, 3 * LANES);
            b0.intoArray(sums, 4 * LANES);
            b1.intoArray(sums, 5 * LANES);
            b2.intoArray(sums, 6 * LANES);
            b3.intoArray(sums, 7 * LANES);
            storeTile(sums, 2, os, outBase, ldo, wr);
            return;
        }
        float s0 = Lanes.sum(a0, sums), s1 = Lanes.sum(a1, sums), s2 = Lanes.sum(a2, sums), s3 = Lanes.sum(a3, sums);
        float t0 = Lanes.sum(b0, sums), t1 = Lanes.sum(b1, sums), t2 = Lanes.sum(b2, sums), t3 = Lanes.sum(b3, sums);
        setF32(os, outBase, s0);
        setF32(os, outBase + ldo, t0);
        if (wr > 1) {
            setF32(os, outBase + 1, s1);
            setF32(os, outBase + ldo + 1, t1);
        }
        if (wr > 2) {
            setF32(os, outBase + 2, s2);
            setF32(os, outBase + ldo + 2, t2);
        }
        if (wr > 3) {
            setF32(os, outBase + 3, s3);
            setF32(os, outBase + ldo + 3, t3);
        }
    }

    /**
     * {@link #dots2x4BF16Pairs} for four rows of x at once, where vectors are 512 bits (32 registers hold the 16
     * accumulators, the four rows' x and the weights). Each weight word is loaded and split once for four rows rather
     * than two, so an FMA needs half the operations beside it. Every accumulator adds its products in the two-row
     * kernel's order, so a row of x gets the same bits from either.
     *
     * <p>{@code xRows} (3 or 4) rows of x are stored. Three are what is left of a few routed rows after the 4-row
     * tiles (an expert given three tokens of a batched decoding step): the fourth row then repeats the third, a quarter
     * of the FMAs wasted, but the weights are read in one pass, where the two-row and then the one-row kernel (a
     * conversion per FMA) took two.
     */
    private static void tile4x4BF16Pairs(float[] xp, int xBase, int xRows, int k, MemorySegment ws, long w0, long w1,
                                         long w2, long w3, int wr, MemorySegment os, long outBase, int ldo,
                                         float[] tile) {
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
        int half = k / 2, x1 = xBase + k, x2 = xBase + 2 * k, x3 = xBase + (xRows - 1) * k;
        var high = Bf16Pairs.HIGH;
        for (int c = 0; c < half; c += LANES) {
            var ws0 = IntVector.fromMemorySegment(I, ws, 2 * w0 + 4L * c, LE);
            var ws1 = IntVector.fromMemorySegment(I, ws, 2 * w1 + 4L * c, LE);
            var ws2 = IntVector.fromMemorySegment(I, ws, 2 * w2 + 4L * c, LE);
            var ws3 = IntVector.fromMemorySegment(I, ws, 2 * w3 + 4L * c, LE);
            var e0 = ws0.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            var e1 = ws1.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            var e2 = ws2.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            var e3 = ws3.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            var x = FloatVector.fromArray(F, xp, xBase + c);
            a0 = e0.fma(x, a0);
            a1 = e1.fma(x, a1);
            a2 = e2.fma(x, a2);
            a3 = e3.fma(x, a3);
            x = FloatVector.fromArray(F, xp, x1 + c);
            b0 = e0.fma(x, b0);
            b1 = e1.fma(x, b1);
            b2 = e2.fma(x, b2);
            b3 = e3.fma(x, b3);
            x = FloatVector.fromArray(F, xp, x2 + c);
            c0 = e0.fma(x, c0);
            c1 = e1.fma(x, c1);
            c2 = e2.fma(x, c2);
            c3 = e3.fma(x, c3);
            x = FloatVector.fromArray(F, xp, x3 + c);
            d0 = e0.fma(x, d0);
            d1 = e1.fma(x, d1);
            d2 = e2.fma(x, d2);
            d3 = e3.fma(x, d3);
            var o0 = ws0.and(high).reinterpretAsFloats();
            var o1 = ws1.and(high).reinterpretAsFloats();
            var o2 = ws2.and(high).reinterpretAsFloats();
            var o3 = ws3.and(high).reinterpretAsFloats();
            x = FloatVector.fromArray(F, xp, xBase + half + c);
            a0 = o0.fma(x, a0);
            a1 = o1.fma(x, a1);
            a2 = o2.fma(x, a2);
            a3 = o3.fma(x, a3);
            x = FloatVector.fromArray(F, xp, x1 + half + c);
            b0 = o0.fma(x, b0);
            b1 = o1.fma(x, b1);
            b2 = o2.fma(x, b2);
            b3 = o3.fma(x, b3);
            x = FloatVector.fromArray(F, xp, x2 + half + c);
            c0 = o0.fma(x, c0);
            c1 = o1.fma(x, c1);
            c2 = o2.fma(x, c2);
            c3 = o3.fma(x, c3);
            x = FloatVector.fromArray(F, xp, x3 + half + c);
            d0 = o0.fma(x, d0);
            d1 = o1.fma(x, d1);
            d2 = o2.fma(x, d2);
            d3 = o3.fma(x, d3);
        }
        a0.intoArray(tile, 0);
        a1.intoArray(tile, LANES);
        a2.intoArray(tile, 2 * LANES);
        a3.intoArray(tile, 3 * LANES);
        b0.intoArray(tile, 4 * LANES);
        b1.intoArray(tile, 5 * LANES);
        b2.intoArray(tile, 6 * LANES);
        b3.intoArray(tile, 7 * LANES);
        c0.intoArray(tile, 8 * LANES);
        c1.intoArray(tile, 9 * LANES);
        c2.intoArray(tile, 10 * LANES);
        c3.intoArray(tile, 11 * LANES);
        d0.intoArray(tile, 12 * LANES);
        d1.intoArray(tile, 13 * LANES);
        d2.intoArray(tile, 14 * LANES);
        d3.intoArray(tile, 15 * LANES);
        storeTile(tile, xRows, os, outBase, ldo, wr);
    }

    /**
     * {@link #dots2x4F32} for four rows of x at once (x from xBase, each row k further), for 512-bit vectors: F32
     * weights. Same order of additions as the two-row kernel.
     */
    private static void tile4x4F32(float[] x, int xBase, int k, MemorySegment ws, long w0, long w1, long w2,
                                   long w3, int wr, MemorySegment os, long outBase, int ldo, float[] tile) {
        int x1 = xBase + k, x2 = xBase + 2 * k, x3 = xBase + 3 * k;
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
        for (int c = 0; c < k; c += LANES) {
            var v0 = FloatVector.fromMemorySegment(F, ws, (w0 + c) * 4, LE);
            var v1 = FloatVector.fromMemorySegment(F, ws, (w1 + c) * 4, LE);
            var v2 = FloatVector.fromMemorySegment(F, ws, (w2 + c) * 4, LE);
            var v3 = FloatVector.fromMemorySegment(F, ws, (w3 + c) * 4, LE);
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            xv = FloatVector.fromArray(F, x, x1 + c);
            b0 = v0.fma(xv, b0);
            b1 = v1.fma(xv, b1);
            b2 = v2.fma(xv, b2);
            b3 = v3.fma(xv, b3);
            xv = FloatVector.fromArray(F, x, x2 + c);
            c0 = v0.fma(xv, c0);
            c1 = v1.fma(xv, c1);
            c2 = v2.fma(xv, c2);
            c3 = v3.fma(xv, c3);
            xv = FloatVector.fromArray(F, x, x3 + c);
            d0 = v0.fma(xv, d0);
            d1 = v1.fma(xv, d1);
            d2 = v2.fma(xv, d2);
            d3 = v3.fma(xv, d3);
        }
        a0.intoArray(tile, 0);
        a1.intoArray(tile, LANES);
        a2.intoArray(tile, 2 * LANES);
        a3.intoArray(tile, 3 * LANES);
        b0.intoArray(tile, 4 * LANES);
        b1.intoArray(tile, 5 * LANES);
        b2.intoArray(tile, 6 * LANES);
        b3.intoArray(tile, 7 * LANES);
        c0.intoArray(tile, 8 * LANES);
        c1.intoArray(tile, 9 * LANES);
        c2.intoArray(tile, 10 * LANES);
        c3.intoArray(tile, 11 * LANES);
        d0.intoArray(tile, 12 * LANES);
        d1.intoArray(tile, 13 * LANES);
        d2.intoArray(tile, 14 * LANES);
        d3.intoArray(tile, 15 * LANES);
        storeTile(tile, 4, os, outBase, ldo, wr);
    }

    /**
     * {@link #tile4x4F32} for block-quantised rows decoded into a scratch array. A kernel of its own: the same code
     * reading both weights in memory and a scratch through segments ran at half speed once it had met both kinds of
     * segment.
     */
    private static void tile4x4Decoded(float[] x, int xBase, int k, float[] ws, int w0, int w1, int w2,
                                       int w3, int wr, MemorySegment os, long outBase, int ldo, float[] tile) {
        int x1 = xBase + k, x2 = xBase + 2 * k, x3 = xBase + 3 * k;
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
        for (int c = 0; c < k; c += LANES) {
            var v0 = FloatVector.fromArray(F, ws, w0 + c);
            var v1 = FloatVector.fromArray(F, ws, w1 + c);
            var v2 = FloatVector.fromArray(F, ws, w2 + c);
            var v3 = FloatVector.fromArray(F, ws, w3 + c);
            var xv = FloatVector.fromArray(F, x, xBase + c);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            xv = FloatVector.fromArray(F, x, x1 + c);
            b0 = v0.fma(xv, b0);
            b1 = v1.fma(xv, b1);
            b2 = v2.fma(xv, b2);
            b3 = v3.fma(xv, b3);
            xv = FloatVector.fromArray(F, x, x2 + c);
            c0 = v0.fma(xv, c0);
            c1 = v1.fma(xv, c1);
            c2 = v2.fma(xv, c2);
            c3 = v3.fma(xv, c3);
            xv = FloatVector.fromArray(F, x, x3 + c);
            d0 = v0.fma(xv, d0);
            d1 = v1.fma(xv, d1);
            d2 = v2.fma(xv, d2);
            d3 = v3.fma(xv, d3);
        }
        a0.intoArray(tile, 0);
        a1.intoArray(tile, LANES);
        a2.intoArray(tile, 2 * LANES);
        a3.intoArray(tile, 3 * LANES);
        b0.intoArray(tile, 4 * LANES);
        b1.intoArray(tile, 5 * LANES);
        b2.intoArray(tile, 6 * LANES);
        b3.intoArray(tile, 7 * LANES);
        c0.intoArray(tile, 8 * LANES);
        c1.intoArray(tile, 9 * LANES);
        c2.intoArray(tile, 10 * LANES);
        c3.intoArray(tile, 11 * LANES);
        d0.intoArray(tile, 12 * LANES);
        d1.intoArray(tile, 13 * LANES);
        d2.intoArray(tile, 14 * LANES);
        d3.intoArray(tile, 15 * LANES);
        storeTile(tile, 4, os, outBase, ldo, wr);
    }

    /**
     * Stores a tile of {@code rows} rows of x × 4 weight rows whose accumulators lie in {@code tile}, accumulator
     * (r, q) at (4r + q)·LANES: output (r, q) goes to outBase + r·ldo + q for q < wr, each the sum of its lanes in
     * {@link Lanes}' order. The kernels hand their accumulators over in an array: a helper taking vectors would box
     * them where C2 does not inline it.
     */
    private static void storeTile(float[] tile, int rows, MemorySegment os, long outBase, int ldo, int wr) {
        Lanes.sums(tile, 4 * rows);
        for (int r = 0; r < rows; r++) {
            for (int q = 0; q < wr; q++) {
                setF32(os, outBase + (long) r * ldo + q, tile[4 * r + q]);
            }
        }
    }

    /**
     * out[outBase .. +8) = x·w_q for the eight consecutive BF16 weight rows from w0 (row length k), x at
     * x[xOff ..]. x is read from a Java array rather than a memory segment: the checks of its loads are then lifted
     * out of the loop, where a segment's stayed in it (measured: 20-35 % faster decode of a 1024×1024 BF16 matrix).
     */
    private static void dots8BF16(float[] x, int xOff, int k, MemorySegment ws, long w0, MemorySegment os, long outBase,
                                  float[] sums) {
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
        long k1 = k;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var xv = FloatVector.fromArray(F, x, xOff + c);
            a0 = Widening.bf16(ws, w0 + c).fma(xv, a0);
            a1 = Widening.bf16(ws, w0 + k1 + c).fma(xv, a1);
            a2 = Widening.bf16(ws, w0 + 2 * k1 + c).fma(xv, a2);
            a3 = Widening.bf16(ws, w0 + 3 * k1 + c).fma(xv, a3);
            a4 = Widening.bf16(ws, w0 + 4 * k1 + c).fma(xv, a4);
            a5 = Widening.bf16(ws, w0 + 5 * k1 + c).fma(xv, a5);
            a6 = Widening.bf16(ws, w0 + 6 * k1 + c).fma(xv, a6);
            a7 = Widening.bf16(ws, w0 + 7 * k1 + c).fma(xv, a7);
        }
        storeSums(x, xOff, k, DType.BF16, ws, w0, 4, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
        storeSums(x, xOff, k, DType.BF16, ws, w0 + 4 * k1, 4, os, outBase + 4, c, Lanes.sum(a4, sums),
                Lanes.sum(a5, sums), Lanes.sum(a6, sums), Lanes.sum(a7, sums));
    }

    /** As {@link #dots8BF16} for F32 weight rows. */
    private static void dots8F32(float[] x, int xOff, int k, MemorySegment ws, long w0, MemorySegment os, long outBase,
                                 float[] sums) {
        var z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
        long k1 = k;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var xv = FloatVector.fromArray(F, x, xOff + c);
            a0 = Widening.f32(ws, w0 + c).fma(xv, a0);
            a1 = Widening.f32(ws, w0 + k1 + c).fma(xv, a1);
            a2 = Widening.f32(ws, w0 + 2 * k1 + c).fma(xv, a2);
            a3 = Widening.f32(ws, w0 + 3 * k1 + c).fma(xv, a3);
            a4 = Widening.f32(ws, w0 + 4 * k1 + c).fma(xv, a4);
            a5 = Widening.f32(ws, w0 + 5 * k1 + c).fma(xv, a5);
            a6 = Widening.f32(ws, w0 + 6 * k1 + c).fma(xv, a6);
            a7 = Widening.f32(ws, w0 + 7 * k1 + c).fma(xv, a7);
        }
        storeSums(x, xOff, k, DType.F32, ws, w0, 4, os, outBase, c, Lanes.sum(a0, sums),
                Lanes.sum(a1, sums), Lanes.sum(a2, sums), Lanes.sum(a3, sums));
        storeSums(x, xOff, k, DType.F32, ws, w0 + 4 * k1, 4, os, outBase + 4, c, Lanes.sum(a4, sums),
                Lanes.sum(a5, sums), Lanes.sum(a6, sums), Lanes.sum(a7, sums));
    }

    /** Adds the scalar tails from column c to the four sums of one x row and stores the first wr of them. */
    private static void storeSums(float[] x, int xRow, int k, DType wt, MemorySegment ws, long w0, int wr,
                                  MemorySegment os, long out, int c, float s0, float s1, float s2, float s3) {
        float[] sums = {s0, s1, s2, s3};
        for (int q = 0; q < wr; q++) {
            long wq = w0 + (long) q * k;
            for (int t = c; t < k; t++) {
                sums[q] += x[xRow + t] * Widening.scalar(wt, ws, wq + t);
            }
            setF32(os, out + q, sums[q]);
        }
    }

    /** out[outBase + q] = x·w_q for the two F16 weight rows at w0, w1; q < wr are stored. */
    private static void dots2(MemorySegment xs, long xBase, int k, MemorySegment ws, long w0, long w1, int wr,
                              MemorySegment os, long outBase, float[] sums) {
        var a0 = FloatVector.zero(F);
        var a1 = a0;
        int c = 0;
        for (int bound = F.loopBound(k); c < bound; c += LANES) {
            var xv = f32(xs, xBase + c);
            a0 = Widening.f16(ws, w0 + c).fma(xv, a0);
            a1 = Widening.f16(ws, w1 + c).fma(xv, a1);
        }
        float s0 = Lanes.sum(a0, sums), s1 = Lanes.sum(a1, sums);
        for (; c < k; c++) {
            float xv = getF32(xs, xBase + c);
            s0 += xv * Widening.scalar(DType.F16, ws, w0 + c);
            s1 += xv * Widening.scalar(DType.F16, ws, w1 + c);
        }
        setF32(os, outBase, s0);
        if (wr > 1) setF32(os, outBase + 1, s1);
    }

    // ---- dx = dy · W with few rows: each thread owns a stripe of dx's columns and streams its part of W ----

    private static void skinnyBackwardInput(Tensor dx, Tensor dy, Tensor w, int n, int m, int k, boolean accumulate) {
        MemorySegment dxs = dx.segment(), dys = dy.segment(), ws = w.segment();
        DType wt = w.dtype();
        if (!accumulate) {
            dx.fill(0f);
        }
        int stripes = (k + LANES - 1) / LANES;
        int minStripes = Math.max(1, (1 << 16) / Math.max(1, LANES * m));
        Parallel.forRange(stripes, minStripes, (from, to) -> {
            int c0 = from * LANES, width = Math.min(k, to * LANES) - c0;
            // Four weight rows' stripes, widened once to F32 and then used by every row of dy.
            float[] stripe = new float[4 * width];
            MemorySegment stripeSegment = MemorySegment.ofArray(stripe);
            for (int j = 0; j < m; j += 4) {
                int rows = Math.min(4, m - j);
                for (int q = 0; q < rows; q++) {
                    Widening.widen(wt, ws, (long) (j + q) * k + c0, stripe, q * width, width);
                }
                for (int i = 0; i < n; i++) {
                    long dyRow = (long) i * m + j;
                    float g0 = getF32(dys, dyRow);
                    float g1 = rows > 1 ? getF32(dys, dyRow + 1) : 0f;
                    float g2 = rows > 2 ? getF32(dys, dyRow + 2) : 0f;
                    float g3 = rows > 3 ? getF32(dys, dyRow + 3) : 0f;
                    axpy4(g0, g1, g2, g3, stripeSegment, 0, width, rows, dxs, (long) i * k + c0, width);
                }
            }
        });
    }

    /**
     * y[c] += g0·w0[c] + g1·w1[c] + g2·w2[c] + g3·w3[c] for c < count: F32 rows w_q at wBase + q·wStride (rows
     * past {@code rows} are not read; their g is zero), y from yBase.
     */
    private static void axpy4(float g0, float g1, float g2, float g3, MemorySegment ws, long wBase, long wStride,
                              int rows, MemorySegment ys, long yBase, int count) {
        long w0 = wBase, w1 = rows > 1 ? wBase + wStride : wBase;
        long w2 = rows > 2 ? wBase + 2 * wStride : wBase, w3 = rows > 3 ? wBase + 3 * wStride : wBase;
        var v0 = FloatVector.broadcast(F, g0);
        var v1 = FloatVector.broadcast(F, g1);
        var v2 = FloatVector.broadcast(F, g2);
        var v3 = FloatVector.broadcast(F, g3);
        int c = 0;
        for (int bound = F.loopBound(count); c < bound; c += LANES) {
            var acc = f32(ys, yBase + c);
            acc = f32(ws, w0 + c).fma(v0, acc);
            acc = f32(ws, w1 + c).fma(v1, acc);
            acc = f32(ws, w2 + c).fma(v2, acc);
            acc = f32(ws, w3 + c).fma(v3, acc);
            acc.intoMemorySegment(ys, (yBase + c) * 4, LE);
        }
        for (; c < count; c++) {
            float acc = getF32(ys, yBase + c);
            acc += g0 * getF32(ws, w0 + c);
            acc += g1 * getF32(ws, w1 + c);
            acc += g2 * getF32(ws, w2 + c);
            acc += g3 * getF32(ws, w3 + c);
            setF32(ys, yBase + c, acc);
        }
    }

    // ---- dW = dyᵀ · x with few rows: each thread owns rows of dW ----

    private static void skinnyBackwardWeight(Tensor dw, Tensor dy, Tensor x, int n, int m, int k, boolean accumulate) {
        MemorySegment dws = dw.segment(), dys = dy.segment(), xs = x.segment();
        Parallel.forRange(m, Math.max(1, (1 << 16) / Math.max(1, n * k)), (from, to) -> {
            for (int j = from; j < to; j++) {
                long row = (long) j * k;
                if (!accumulate) {
                    dws.asSlice(row * 4, (long) k * 4).fill((byte) 0);
                }
                for (int i = 0; i < n; i += 4) {
                    int rows = Math.min(4, n - i);
                    float g0 = getF32(dys, (long) i * m + j);
                    float g1 = rows > 1 ? getF32(dys, (long) (i + 1) * m + j) : 0f;
                    float g2 = rows > 2 ? getF32(dys, (long) (i + 2) * m + j) : 0f;
                    float g3 = rows > 3 ? getF32(dys, (long) (i + 3) * m + j) : 0f;
                    axpy4(g0, g1, g2, g3, xs, (long) i * k, k, rows, dws, row, k);
                }
            }
        });
    }

    private static void check(boolean ok, String op, Tensor... tensors) {
        if (!ok) {
            throw new IllegalArgumentException("MatMul." + op + ": incompatible shapes " + java.util.Arrays.toString(tensors));
        }
    }
}
