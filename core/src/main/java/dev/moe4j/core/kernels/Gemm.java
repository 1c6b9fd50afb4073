package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.FLOAT;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.LE;

/**
 * The blocked, register-tiled product behind {@link MatMul} for many rows: C[M, N] (+)= A[M, K] · B[K, N].
 *
 * <p>B is packed, block by block, into F32 panels of {@link #NR} columns laid out k-major (widening BF16/F16,
 * and transposing a weight stored [N, K] LANES × LANES in registers on the way), so that the micro-kernel reads it
 * with plain vector loads. A is read in place from its heap array: each step of the micro-kernel broadcasts
 * one element of each of {@link #MR} rows, wherever A's strides put them (rows of x, or columns of dy for the
 * weight gradient). The micro-kernel keeps an MR × NR tile of C in registers (24 vectors on AVX-512, 12 on
 * AVX2: {@link #NR_VECTORS}) over {@link #KC} steps.
 *
 * <p>Blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core): a packed B block of KC × NC floats (512 KiB) stays in L2
 * while every MR-row sliver of A (6 KiB, L1) runs over all its panels; the k blocks of one C block
 * ({@link #MC} × NC) follow each other, so that C's read-modify-write stays in cache rather than streaming an
 * output far larger than L2 once per k block. Threads split N (or M when N is narrow) into disjoint ranges:
 * every element of C is computed by one thread in a fixed order, whatever the thread count.
 */
final class Gemm {
    static final int MR = 6;
    /**
     * Vectors across a tile: 4 where vectors are 512 bits (AVX-512 has 32 registers: 24 accumulators, 4 B vectors
     * and a broadcast fit), 2 otherwise (AVX2's 16 registers hold 12 accumulators, 2 B vectors and a broadcast; a
     * 6 × 4 tile there would spill its accumulators to the stack on every step).
     */
    static final int NR_VECTORS = LANES >= 16 ? 4 : 2;
    static final int NR = NR_VECTORS * LANES;
    static final int KC = 256;
    static final int NC = 512;
    static final int MC = 768;

    /** Per-thread packed B block, C tile and transpose block, reused across calls. */
    private static final ThreadLocal<float[]> PACKED_B = ThreadLocal.withInitial(() -> new float[KC * NC]);
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[MR * NR]);
    private static final ThreadLocal<float[]> BLOCK = ThreadLocal.withInitial(() -> new float[16 * 16]);
    private static final ThreadLocal<float[]> DECODED_PANEL = ThreadLocal.withInitial(() -> new float[NR * KC]);

    private Gemm() {
    }

    /**
     * Where the operands are. A element (i, p) is a[aOffset + i·aRowStride + p·aColStride] (F32, on the heap).
     * B element (p, j) is at index j·ldb + p of b when {@code bTransposed} (a weight [N, K]) and p·ldb + j
     * otherwise ([K, N]), of type bType. C element (i, j) is at index i·ldc + j of c (F32).
     */
    record Operands(float[] a, int aOffset, int aRowStride, int aColStride,
                    MemorySegment b, DType bType, long ldb, boolean bTransposed,
                    MemorySegment c, long ldc) {
    }

    /** A float array and the index of an F32 segment's first element in it. */
    record HeapFloats(float[] array, int offset) {
    }

    /** The heap array behind an F32 segment, or a copy of the segment's floats when it has none. */
    static HeapFloats heapFloats(MemorySegment s) {
        if (s.heapBase().orElse(null) instanceof float[] array) {
            return new HeapFloats(array, Math.toIntExact(s.address() / 4));
        }
        float[] copy = new float[Math.toIntExact(s.byteSize() / 4)];
        MemorySegment.copy(s, FLOAT, 0, copy, 0, copy.length);
        return new HeapFloats(copy, 0);
    }

    static void multiply(Operands o, int m, int n, int k, boolean accumulate) {
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                zero(o, m, n);
            }
            return;
        }
        int threads = Parallel.threads();
        int panels = (n + NR - 1) / NR;
        if (panels >= 2 * threads || m < 2 * MR * threads) {
            // Split the columns: each task packs only its own part of B.
            int tasks = Math.min(threads, panels);
            Parallel.forRange(tasks, 1, (from, to) -> {
                for (int t = from; t < to; t++) {
                    int n0 = (int) ((long) panels * t / tasks) * NR;
                    int n1 = Math.min(n, (int) ((long) panels * (t + 1) / tasks) * NR);
                    run(o, 0, m, n0, n1, k, accumulate);
                }
            });
        } else {
            int slivers = (m + MR - 1) / MR;
            int tasks = Math.min(threads, slivers);
            Parallel.forRange(tasks, 1, (from, to) -> {
                for (int t = from; t < to; t++) {
                    int m0 = (int) ((long) slivers * t / tasks) * MR;
                    int m1 = Math.min(m, (int) ((long) slivers * (t + 1) / tasks) * MR);
                    run(o, m0, m1, 0, n, k, accumulate);
                }
            });
        }
    }

    /**
     * As {@link #multiply}, on the calling thread only: for callers that already spread independent products
     * (attention's heads) over the pool.
     */
    static void multiplyHere(Operands o, int m, int n, int k, boolean accumulate) {
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                zero(o, m, n);
            }
            return;
        }
        run(o, 0, m, 0, n, k, accumulate);
    }

    private static void run(Operands o, int m0, int m1, int n0, int n1, int k, boolean accumulate) {
        float[] bp = PACKED_B.get();
        float[] tile = TILE.get();
        float[] block = BLOCK.get();
        float[] a = o.a();
        int rs = o.aRowStride(), cs = o.aColStride();
        for (int ic = m0; ic < m1; ic += MC) {
            int mc = Math.min(MC, m1 - ic);
            for (int jc = n0; jc < n1; jc += NC) {
                int nc = Math.min(NC, n1 - jc);
                for (int pc = 0; pc < k; pc += KC) {
                    int kc = Math.min(KC, k - pc);
                    packB(o, bp, pc, kc, jc, nc, block);
                    boolean overwrite = pc == 0 && !accumulate;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int mr = Math.min(MR, mc - ir);
                        int aOff = o.aOffset() + (ic + ir) * rs + pc * cs;
                        for (int jr = 0; jr < nc; jr += NR) {
                            if (NR_VECTORS == 4) {
                                kernel(a, aOff, rs, mr, cs, bp, jr * kc, kc, tile);
                            } else {
                                kernel2(a, aOff, rs, mr, cs, bp, jr * kc, kc, tile);
                            }
                            writeTile(tile, o.c(), o.ldc(), ic + ir, mr, jc + jr, Math.min(NR, nc - jr), overwrite);
                        }
                    }
                }
            }
        }
    }

    /** Packs B[pc .. pc+kc, jc .. jc+nc] as panels of NR columns, each kc × NR, zero-padded past nc. */
    private static void packB(Operands o, float[] bp, int pc, int kc, int jc, int nc, float[] block) {
        if (o.bTransposed()) {
            packTransposed(o, bp, pc, kc, jc, nc, block);
        } else {
            packRows(o, bp, pc, kc, jc, nc);
        }
    }

    /** B stored [N, K] (a weight): 16 rows × 16 columns at a time, transposed in registers. */
    private static void packTransposed(Operands o, float[] bp, int pc, int kc, int jc, int nc, float[] block) {
        if (o.bType().isBlockQuantized()) {
            packBlockRows(o, bp, pc, kc, jc, nc, block);
            return;
        }
        for (int jr = 0; jr < nc; jr += NR) {
            packPanel(o.bType(), o.b(), (long) (jc + jr) * o.ldb() + pc, o.ldb(), kc, Math.min(NR, nc - jr), bp,
                    jr * kc, block);
        }
    }

    /**
     * Packs one panel: {@code width} (at most NR) rows of kc elements, row r starting at element first + r·ldb of b,
     * as kc × NR floats from bp[base], zero-padded past width.
     */
    private static void packPanel(DType type, MemorySegment b, long first, long ldb, int kc, int width, float[] bp,
                                  int base, float[] block) {
        int p = 0;
        if (LANES == 16 || LANES == 8) {
            // LANES rows at a time, each read sequentially along k: few streams for the prefetcher.
            int whole = kc / LANES * LANES;
            for (int g = 0; g < NR; g += LANES) {
                for (int q = 0; q < whole; q += LANES) {
                    long at = first + g * ldb + q;
                    if (LANES == 16) {
                        transposeBlock(type, b, at, ldb, width - g, bp, base + q * NR + g, block);
                    } else {
                        transposeBlock8(type, b, at, ldb, width - g, bp, base + q * NR + g, block);
                    }
                }
            }
            p = whole;
        }
        for (; p < kc; p++) {
            int out = base + p * NR;
            int jj = 0;
            for (; jj < width; jj++) {
                bp[out + jj] = Widening.scalar(type, b, first + jj * ldb + p);
            }
            for (; jj < NR; jj++) {
                bp[out + jj] = 0f;
            }
        }
    }

    /**
     * A block-quantised weight stored [N, K]: a panel's rows are decoded to F32 (kc and pc are whole blocks, as K
     * is), then packed as an F32 weight's are, transposed in registers.
     */
    private static void packBlockRows(Operands o, float[] bp, int pc, int kc, int jc, int nc, float[] block) {
        DType type = o.bType();
        long rowBytes = type.byteCount(o.ldb());
        float[] rows = DECODED_PANEL.get();
        MemorySegment decoded = MemorySegment.ofArray(rows);
        for (int jr = 0; jr < nc; jr += NR) {
            int width = Math.min(NR, nc - jr);
            for (int jj = 0; jj < width; jj++) {
                BlockDecode.decode(type, o.b(), (jc + jr + jj) * rowBytes, pc, rows, jj * kc, kc);
            }
            packPanel(DType.F32, decoded, 0, kc, kc, width, bp, jr * kc, block);
        }
    }

    /**
     * B stored [K, N]: the kc rows are read start to end, four at a time so that four memory streams are in
     * flight (one row at a time, each short chunk of a row waits for memory before the prefetcher catches up),
     * and dealt out to the panels.
     */
    private static void packRows(Operands o, float[] bp, int pc, int kc, int jc, int nc) {
        MemorySegment b = o.b();
        DType type = o.bType();
        long ldb = o.ldb();
        for (int p = 0; p < kc; p += 4) {
            int rows = Math.min(4, kc - p);
            long row = (pc + p) * ldb + jc;
            for (int jr = 0; jr < nc; jr += NR) {
                int width = Math.min(NR, nc - jr);
                for (int q = 0; q < rows; q++) {
                    int out = jr * kc + (p + q) * NR;
                    Widening.widen(type, b, row + q * ldb + jr, bp, out, width);
                    java.util.Arrays.fill(bp, out + width, out + NR, 0f);
                }
            }
        }
    }

    // Index vectors of the 16 × 16 transpose: stage s swaps bit s of the row with bit s of the column.
    private static final FloatVector[] LOW = new FloatVector[4];
    private static final FloatVector[] HIGH = new FloatVector[4];

    static {
        if (LANES == 16 || LANES == 8) {
            for (int s = 0; (1 << s) < LANES; s++) {
                int bit = 1 << s;
                float[] lo = new float[LANES], hi = new float[LANES];
                for (int c = 0; c < LANES; c++) {
                    lo[c] = (c & bit) == 0 ? c : LANES + (c & ~bit);
                    hi[c] = (c & bit) == 0 ? (c | bit) : LANES + c;
                }
                LOW[s] = FloatVector.fromArray(F, lo, 0);
                HIGH[s] = FloatVector.fromArray(F, hi, 0);
            }
        }
    }

    /**
     * Reads 16 weight rows × 16 columns (rows past {@code rows} read as zero), transposes them in registers
     * and writes column t as 16 consecutive floats at out + t·NR: the packing of a weight stored [N, K].
     */
    private static void transposeBlock(DType type, MemorySegment b, long at, long ldb, int rows, float[] bp, int out,
                                       float[] block) {
        for (int r = 0; r < 16; r++) {
            if (r < rows) {
                Widening.widen(type, b, at + r * ldb, block, 16 * r, 16);
            } else {
                java.util.Arrays.fill(block, 16 * r, 16 * r + 16, 0f);
            }
        }
        var r0 = FloatVector.fromArray(F, block, 0);
        var r1 = FloatVector.fromArray(F, block, 16);
        var r2 = FloatVector.fromArray(F, block, 32);
        var r3 = FloatVector.fromArray(F, block, 48);
        var r4 = FloatVector.fromArray(F, block, 64);
        var r5 = FloatVector.fromArray(F, block, 80);
        var r6 = FloatVector.fromArray(F, block, 96);
        var r7 = FloatVector.fromArray(F, block, 112);
        var r8 = FloatVector.fromArray(F, block, 128);
        var r9 = FloatVector.fromArray(F, block, 144);
        var r10 = FloatVector.fromArray(F, block, 160);
        var r11 = FloatVector.fromArray(F, block, 176);
        var r12 = FloatVector.fromArray(F, block, 192);
        var r13 = FloatVector.fromArray(F, block, 208);
        var r14 = FloatVector.fromArray(F, block, 224);
        var r15 = FloatVector.fromArray(F, block, 240);
        // Four butterfly stages, unrolled so that the 16 rows stay in registers; stage s pairs rows r and r | 2^s.
        FloatVector lo0 = LOW[0], hi0 = HIGH[0];
        var s0a0 = lo0.selectFrom(r0, r1);
        var s0a1 = hi0.selectFrom(r0, r1);
        var s0a2 = lo0.selectFrom(r2, r3);
        var s0a3 = hi0.selectFrom(r2, r3);
        var s0a4 = lo0.selectFrom(r4, r5);
        var s0a5 = hi0.selectFrom(r4, r5);
        var s0a6 = lo0.selectFrom(r6, r7);
        var s0a7 = hi0.selectFrom(r6, r7);
        var s0a8 = lo0.selectFrom(r8, r9);
        var s0a9 = hi0.selectFrom(r8, r9);
        var s0a10 = lo0.selectFrom(r10, r11);
        var s0a11 = hi0.selectFrom(r10, r11);
        var s0a12 = lo0.selectFrom(r12, r13);
        var s0a13 = hi0.selectFrom(r12, r13);
        var s0a14 = lo0.selectFrom(r14, r15);
        var s0a15 = hi0.selectFrom(r14, r15);
        r0 = s0a0;
        r1 = s0a1;
        r2 = s0a2;
        r3 = s0a3;
        r4 = s0a4;
        r5 = s0a5;
        r6 = s0a6;
        r7 = s0a7;
        r8 = s0a8;
        r9 = s0a9;
        r10 = s0a10;
        r11 = s0a11;
        r12 = s0a12;
        r13 = s0a13;
        r14 = s0a14;
        r15 = s0a15;
        FloatVector lo1 = LOW[1], hi1 = HIGH[1];
        var s1a0 = lo1.selectFrom(r0, r2);
        var s1a2 = hi1.selectFrom(r0, r2);
        var s1a1 = lo1.selectFrom(r1, r3);
        var s1a3 = hi1.selectFrom(r1, r3);
        var s1a4 = lo1.selectFrom(r4, r6);
        var s1a6 = hi1.selectFrom(r4, r6);
        var s1a5 = lo1.selectFrom(r5, r7);
        var s1a7 = hi1.selectFrom(r5, r7);
        var s1a8 = lo1.selectFrom(r8, r10);
        var s1a10 = hi1.selectFrom(r8, r10);
        var s1a9 = lo1.selectFrom(r9, r11);
        var s1a11 = hi1.selectFrom(r9, r11);
        var s1a12 = lo1.selectFrom(r12, r14);
        var s1a14 = hi1.selectFrom(r12, r14);
        var s1a13 = lo1.selectFrom(r13, r15);
        var s1a15 = hi1.selectFrom(r13, r15);
        r0 = s1a0;
        r1 = s1a1;
        r2 = s1a2;
        r3 = s1a3;
        r4 = s1a4;
        r5 = s1a5;
        r6 = s1a6;
        r7 = s1a7;
        r8 = s1a8;
        r9 = s1a9;
        r10 = s1a10;
        r11 = s1a11;
        r12 = s1a12;
        r13 = s1a13;
        r14 = s1a14;
        r15 = s1a15;
        FloatVector lo2 = LOW[2], hi2 = HIGH[2];
        var s2a0 = lo2.selectFrom(r0, r4);
        var s2a4 = hi2.selectFrom(r0, r4);
        var s2a1 = lo2.selectFrom(r1, r5);
        var s2a5 = hi2.selectFrom(r1, r5);
        var s2a2 = lo2.selectFrom(r2, r6);
        var s2a6 = hi2.selectFrom(r2, r6);
        var s2a3 = lo2.selectFrom(r3, r7);
        var s2a7 = hi2.selectFrom(r3, r7);
        var s2a8 = lo2.selectFrom(r8, r12);
        var s2a12 = hi2.selectFrom(r8, r12);
        var s2a9 = lo2.selectFrom(r9, r13);
        var s2a13 = hi2.selectFrom(r9, r13);
        var s2a10 = lo2.selectFrom(r10, r14);
        var s2a14 = hi2.selectFrom(r10, r14);
        var s2a11 = lo2.selectFrom(r11, r15);
        var s2a15 = hi2.selectFrom(r11, r15);
        r0 = s2a0;
        r1 = s2a1;
        r2 = s2a2;
        r3 = s2a3;
        r4 = s2a4;
        r5 = s2a5;
        r6 = s2a6;
        r7 = s2a7;
        r8 = s2a8;
        r9 = s2a9;
        r10 = s2a10;
        r11 = s2a11;
        r12 = s2a12;
        r13 = s2a13;
        r14 = s2a14;
        r15 = s2a15;
        FloatVector lo3 = LOW[3], hi3 = HIGH[3];
        var s3a0 = lo3.selectFrom(r0, r8);
        var s3a8 = hi3.selectFrom(r0, r8);
        var s3a1 = lo3.selectFrom(r1, r9);
        var s3a9 = hi3.selectFrom(r1, r9);
        var s3a2 = lo3.selectFrom(r2, r10);
        var s3a10 = hi3.selectFrom(r2, r10);
        var s3a3 = lo3.selectFrom(r3, r11);
        var s3a11 = hi3.selectFrom(r3, r11);
        var s3a4 = lo3.selectFrom(r4, r12);
        var s3a12 = hi3.selectFrom(r4, r12);
        var s3a5 = lo3.selectFrom(r5, r13);
        var s3a13 = hi3.selectFrom(r5, r13);
        var s3a6 = lo3.selectFrom(r6, r14);
        var s3a14 = hi3.selectFrom(r6, r14);
        var s3a7 = lo3.selectFrom(r7, r15);
        var s3a15 = hi3.selectFrom(r7, r15);
        r0 = s3a0;
        r1 = s3a1;
        r2 = s3a2;
        r3 = s3a3;
        r4 = s3a4;
        r5 = s3a5;
        r6 = s3a6;
        r7 = s3a7;
        r8 = s3a8;
        r9 = s3a9;
        r10 = s3a10;
        r11 = s3a11;
        r12 = s3a12;
        r13 = s3a13;
        r14 = s3a14;
        r15 = s3a15;
        r0.intoArray(bp, out);
        r1.intoArray(bp, out + NR);
        r2.intoArray(bp, out + 2 * NR);
        r3.intoArray(bp, out + 3 * NR);
        r4.intoArray(bp, out + 4 * NR);
        r5.intoArray(bp, out + 5 * NR);
        r6.intoArray(bp, out + 6 * NR);
        r7.intoArray(bp, out + 7 * NR);
        r8.intoArray(bp, out + 8 * NR);
        r9.intoArray(bp, out + 9 * NR);
        r10.intoArray(bp, out + 10 * NR);
        r11.intoArray(bp, out + 11 * NR);
        r12.intoArray(bp, out + 12 * NR);
        r13.intoArray(bp, out + 13 * NR);
        r14.intoArray(bp, out + 14 * NR);
        r15.intoArray(bp, out + 15 * NR);
    }

    /**
     * As {@link #transposeBlock} for 8-lane vectors (AVX2): 8 weight rows × 8 columns, column t written as 8
     * consecutive floats at out + t·NR.
     */
    private static void transposeBlock8(DType type, MemorySegment b, long at, long ldb, int rows, float[] bp, int out,
                                        float[] block) {
        for (int r = 0; r < 8; r++) {
            if (r < rows) {
                Widening.widen(type, b, at + r * ldb, block, 8 * r, 8);
            } else {
                java.util.Arrays.fill(block, 8 * r, 8 * r + 8, 0f);
            }
        }
        var r0 = FloatVector.fromArray(F, block, 0);
        var r1 = FloatVector.fromArray(F, block, 8);
        var r2 = FloatVector.fromArray(F, block, 16);
        var r3 = FloatVector.fromArray(F, block, 24);
        var r4 = FloatVector.fromArray(F, block, 32);
        var r5 = FloatVector.fromArray(F, block, 40);
        var r6 = FloatVector.fromArray(F, block, 48);
        var r7 = FloatVector.fromArray(F, block, 56);
        FloatVector lo0 = LOW[0], hi0 = HIGH[0];
        var s0a0 = lo0.selectFrom(r0, r1);
        var s0a1 = hi0.selectFrom(r0, r1);
        var s0a2 = lo0.selectFrom(r2, r3);
        var s0a3 = hi0.selectFrom(r2, r3);
        var s0a4 = lo0.selectFrom(r4, r5);
        var s0a5 = hi0.selectFrom(r4, r5);
        var s0a6 = lo0.selectFrom(r6, r7);
        var s0a7 = hi0.selectFrom(r6, r7);
        r0 = s0a0;
        r1 = s0a1;
        r2 = s0a2;
        r3 = s0a3;
        r4 = s0a4;
        r5 = s0a5;
        r6 = s0a6;
        r7 = s0a7;
        FloatVector lo1 = LOW[1], hi1 = HIGH[1];
        var s1a0 = lo1.selectFrom(r0, r2);
        var s1a2 = hi1.selectFrom(r0, r2);
        var s1a1 = lo1.selectFrom(r1, r3);
        var s1a3 = hi1.selectFrom(r1, r3);
        var s1a4 = lo1.selectFrom(r4, r6);
        var s1a6 = hi1.selectFrom(r4, r6);
        var s1a5 = lo1.selectFrom(r5, r7);
        var s1a7 = hi1.selectFrom(r5, r7);
        r0 = s1a0;
        r1 = s1a1;
        r2 = s1a2;
        r3 = s1a3;
        r4 = s1a4;
        r5 = s1a5;
        r6 = s1a6;
        r7 = s1a7;
        FloatVector lo2 = LOW[2], hi2 = HIGH[2];
        var s2a0 = lo2.selectFrom(r0, r4);
        var s2a4 = hi2.selectFrom(r0, r4);
        var s2a1 = lo2.selectFrom(r1, r5);
        var s2a5 = hi2.selectFrom(r1, r5);
        var s2a2 = lo2.selectFrom(r2, r6);
        var s2a6 = hi2.selectFrom(r2, r6);
        var s2a3 = lo2.selectFrom(r3, r7);
        var s2a7 = hi2.selectFrom(r3, r7);
        r0 = s2a0;
        r1 = s2a1;
        r2 = s2a2;
        r3 = s2a3;
        r4 = s2a4;
        r5 = s2a5;
        r6 = s2a6;
        r7 = s2a7;
        r0.intoArray(bp, out);
        r1.intoArray(bp, out + 1 * NR);
        r2.intoArray(bp, out + 2 * NR);
        r3.intoArray(bp, out + 3 * NR);
        r4.intoArray(bp, out + 4 * NR);
        r5.intoArray(bp, out + 5 * NR);
        r6.intoArray(bp, out + 6 * NR);
        r7.intoArray(bp, out + 7 * NR);
    }

    /**
     * tile[MR × NR] = A sliver · B panel over kc steps; 24 accumulators stay in registers. Row r of the sliver
     * starts at a[aOff + r·rs] and steps by cs; rows past mr repeat row 0 (their results are not stored).
     */
    private static void kernel(float[] a, int aOff, int rs, int mr, int cs, float[] bp, int bOff, int kc, float[] tile) {
        int o1 = mr > 1 ? rs : 0, o2 = mr > 2 ? 2 * rs : 0, o3 = mr > 3 ? 3 * rs : 0;
        int o4 = mr > 4 ? 4 * rs : 0, o5 = mr > 5 ? 5 * rs : 0;
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00, c43 = c00;
        FloatVector c50 = c00, c51 = c00, c52 = c00, c53 = c00;
        for (int p = 0, ao = aOff, bo = bOff; p < kc; p++, ao += cs, bo += NR) {
            var b0 = FloatVector.fromArray(F, bp, bo);
            var b1 = FloatVector.fromArray(F, bp, bo + LANES);
            var b2 = FloatVector.fromArray(F, bp, bo + 2 * LANES);
            var b3 = FloatVector.fromArray(F, bp, bo + 3 * LANES);
            var x = FloatVector.broadcast(F, a[ao]);
            c00 = b0.fma(x, c00);
            c01 = b1.fma(x, c01);
            c02 = b2.fma(x, c02);
            c03 = b3.fma(x, c03);
            x = FloatVector.broadcast(F, a[ao + o1]);
            c10 = b0.fma(x, c10);
            c11 = b1.fma(x, c11);
            c12 = b2.fma(x, c12);
            c13 = b3.fma(x, c13);
            x = FloatVector.broadcast(F, a[ao + o2]);
            c20 = b0.fma(x, c20);
            c21 = b1.fma(x, c21);
            c22 = b2.fma(x, c22);
            c23 = b3.fma(x, c23);
            x = FloatVector.broadcast(F, a[ao + o3]);
            c30 = b0.fma(x, c30);
            c31 = b1.fma(x, c31);
            c32 = b2.fma(x, c32);
            c33 = b3.fma(x, c33);
            x = FloatVector.broadcast(F, a[ao + o4]);
            c40 = b0.fma(x, c40);
            c41 = b1.fma(x, c41);
            c42 = b2.fma(x, c42);
            c43 = b3.fma(x, c43);
            x = FloatVector.broadcast(F, a[ao + o5]);
            c50 = b0.fma(x, c50);
            c51 = b1.fma(x, c51);
            c52 = b2.fma(x, c52);
            c53 = b3.fma(x, c53);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, LANES);
        c02.intoArray(tile, 2 * LANES);
        c03.intoArray(tile, 3 * LANES);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + LANES);
        c12.intoArray(tile, NR + 2 * LANES);
        c13.intoArray(tile, NR + 3 * LANES);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + LANES);
        c22.intoArray(tile, 2 * NR + 2 * LANES);
        c23.intoArray(tile, 2 * NR + 3 * LANES);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + LANES);
        c32.intoArray(tile, 3 * NR + 2 * LANES);
        c33.intoArray(tile, 3 * NR + 3 * LANES);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + LANES);
        c42.intoArray(tile, 4 * NR + 2 * LANES);
        c43.intoArray(tile, 4 * NR + 3 * LANES);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + LANES);
        c52.intoArray(tile, 5 * NR + 2 * LANES);
        c53.intoArray(tile, 5 * NR + 3 * LANES);
    }

    /** As {@link #kernel} with a tile of 2 vectors across (NR_VECTORS = 2): 12 accumulators stay in registers. */
    private static void kernel2(float[] a, int aOff, int rs, int mr, int cs, float[] bp, int bOff, int kc, float[] tile) {
        int o1 = mr > 1 ? rs : 0, o2 = mr > 2 ? 2 * rs : 0, o3 = mr > 3 ? 3 * rs : 0;
        int o4 = mr > 4 ? 4 * rs : 0, o5 = mr > 5 ? 5 * rs : 0;
        FloatVector c00 = FloatVector.zero(F), c01 = c00;
        FloatVector c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        FloatVector c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int p = 0, ao = aOff, bo = bOff; p < kc; p++, ao += cs, bo += NR) {
            var b0 = FloatVector.fromArray(F, bp, bo);
            var b1 = FloatVector.fromArray(F, bp, bo + LANES);
            var x = FloatVector.broadcast(F, a[ao]);
            c00 = b0.fma(x, c00);
            c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(F, a[ao + o1]);
            c10 = b0.fma(x, c10);
            c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(F, a[ao + o2]);
            c20 = b0.fma(x, c20);
            c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(F, a[ao + o3]);
            c30 = b0.fma(x, c30);
            c31 = b1.fma(x, c31);
            x = FloatVector.broadcast(F, a[ao + o4]);
            c40 = b0.fma(x, c40);
            c41 = b1.fma(x, c41);
            x = FloatVector.broadcast(F, a[ao + o5]);
            c50 = b0.fma(x, c50);
            c51 = b1.fma(x, c51);
        }
        c00.intoArray(tile, 0 * NR);
        c01.intoArray(tile, 0 * NR + LANES);
        c10.intoArray(tile, 1 * NR);
        c11.intoArray(tile, 1 * NR + LANES);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + LANES);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + LANES);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + LANES);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + LANES);
    }

    /** C[i0 .. i0+mr, j0 .. j0+nr] = (or +=) the tile's first mr rows and nr columns. */
    private static void writeTile(float[] tile, MemorySegment c, long ldc, int i0, int mr, int j0, int nr, boolean overwrite) {
        for (int r = 0; r < mr; r++) {
            long row = (i0 + r) * ldc + j0;
            for (int v = 0; v < NR; v += LANES) {
                int valid = nr - v;
                if (valid <= 0) {
                    break;
                }
                var t = FloatVector.fromArray(F, tile, r * NR + v);
                long at = (row + v) * 4;
                if (valid >= LANES) {
                    if (!overwrite) {
                        t = t.add(FloatVector.fromMemorySegment(F, c, at, LE));
                    }
                    t.intoMemorySegment(c, at, LE);
                } else {
                    // A masked store checks every lane on a slow path; a few scalar stores are cheaper (narrow
                    // products such as the router's [tokens, experts] end here on every row).
                    int base = r * NR + v;
                    for (int j = 0; j < valid; j++) {
                        long o = at + 4L * j;
                        float value = tile[base + j];
                        c.set(FLOAT, o, overwrite ? value : value + c.get(FLOAT, o));
                    }
                }
            }
        }
    }

    private static void zero(Operands o, int m, int n) {
        for (int i = 0; i < m; i++) {
            o.c().asSlice((long) i * o.ldc() * 4, (long) n * 4).fill((byte) 0);
        }
    }
}
