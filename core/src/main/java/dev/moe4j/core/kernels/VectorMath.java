package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.moe4j.core.kernels.Widening.F;
import static dev.moe4j.core.kernels.Widening.LANES;
import static dev.moe4j.core.kernels.Widening.f32;
import static dev.moe4j.core.kernels.Widening.getF32;
import static dev.moe4j.core.kernels.Widening.setF32;

/**
 * Small vector operations that model code needs everywhere (residual adds, biases, scaling, dot products),
 * written once with the Vector API. Element counts are in elements and offsets in elements, never bytes.
 * Operands are F32 unless a parameter says "any float type" (then BF16 and F16 are widened).
 */
public final class VectorMath {
    /** Below this many elements a loop is not worth splitting over threads. */
    private static final int PARALLEL_GRAIN = 1 << 16;

    private VectorMath() {
    }

    /** out = a + b, elementwise; out may be a or b. */
    public static void add(Tensor out, Tensor a, Tensor b) {
        Checks.requireF32("VectorMath.add", out, a, b);
        Checks.requireSameSize("VectorMath.add", out, a);
        Checks.requireSameSize("VectorMath.add", out, b);
        MemorySegment o = out.segment(), as = a.segment(), bs = b.segment();
        Chunks.forElements(out.size(), PARALLEL_GRAIN, (from, to) -> {
            long i = from;
            for (long bound = from + F.loopBound(to - from); i < bound; i += LANES) {
                f32(as, i).add(f32(bs, i)).intoMemorySegment(o, i * 4, Widening.LE);
            }
            for (; i < to; i++) {
                setF32(o, i, getF32(as, i) + getF32(bs, i));
            }
        });
    }

    /** acc += x, elementwise. */
    public static void addInPlace(Tensor acc, Tensor x) {
        add(acc, acc, x);
    }

    /** out = a ⊙ b, elementwise; out may be a or b. */
    public static void mul(Tensor out, Tensor a, Tensor b) {
        Checks.requireF32("VectorMath.mul", out, a, b);
        Checks.requireSameSize("VectorMath.mul", out, a);
        Checks.requireSameSize("VectorMath.mul", out, b);
        MemorySegment o = out.segment(), as = a.segment(), bs = b.segment();
        Chunks.forElements(out.size(), PARALLEL_GRAIN, (from, to) -> {
            long i = from;
            for (long bound = from + F.loopBound(to - from); i < bound; i += LANES) {
                f32(as, i).mul(f32(bs, i)).intoMemorySegment(o, i * 4, Widening.LE);
            }
            for (; i < to; i++) {
                setF32(o, i, getF32(as, i) * getF32(bs, i));
            }
        });
    }

    /** x *= s, in place. */
    public static void scale(Tensor x, float s) {
        Checks.requireF32("VectorMath.scale", x);
        MemorySegment xs = x.segment();
        Chunks.forElements(x.size(), PARALLEL_GRAIN, (from, to) -> {
            long i = from;
            for (long bound = from + F.loopBound(to - from); i < bound; i += LANES) {
                f32(xs, i).mul(s).intoMemorySegment(xs, i * 4, Widening.LE);
            }
            for (; i < to; i++) {
                setF32(xs, i, getF32(xs, i) * s);
            }
        });
    }

    /** y += a·x over whole tensors of equal size. */
    public static void axpy(float a, Tensor x, Tensor y) {
        Checks.requireF32("VectorMath.axpy", x, y);
        Checks.requireSameSize("VectorMath.axpy", x, y);
        MemorySegment xs = x.segment(), ys = y.segment();
        Chunks.forElements(x.size(), PARALLEL_GRAIN, (from, to) -> axpy(a, xs, from, ys, from, (int) (to - from)));
    }

    /** y[yOffset ..] += a·x[xOffset ..] over {@code length} elements (one row of attention's weighted sum). */
    public static void axpy(float a, Tensor x, long xOffset, Tensor y, long yOffset, int length) {
        Checks.requireF32("VectorMath.axpy", x, y);
        axpy(a, x.segment(), xOffset, y.segment(), yOffset, length);
    }

    /** Σ a·b over whole tensors of equal size; x may be of any float type. */
    public static float dot(Tensor a, Tensor b) {
        Checks.requireSameSize("VectorMath.dot", a, b);
        return dot(a, 0, b, 0, Math.toIntExact(a.size()));
    }

    /** Σ a[aOffset + i]·b[bOffset + i] for i < length (a query·key product); b may be of any float type. */
    public static float dot(Tensor a, long aOffset, Tensor b, long bOffset, int length) {
        Checks.requireF32("VectorMath.dot", a);
        Checks.requireWeight("VectorMath.dot", b);
        return dot(a.segment(), aOffset, b.dtype(), b.segment(), bOffset, length, new float[LANES]);
    }

    /** Adds the vector {@code v} (length = x.cols(), any float type) to every row of x: a bias. */
    public static void addRowVector(Tensor x, Tensor v) {
        Checks.requireF32("VectorMath.addRowVector", x);
        Checks.requireWeight("VectorMath.addRowVector", v);
        int cols = x.cols();
        Checks.require(v.size() == cols, () -> "VectorMath.addRowVector: " + v + " does not match the rows of " + x);
        MemorySegment xs = x.segment();
        float[] vs = Widening.toFloats(v);
        Parallel.forRange(x.rows(), Checks.minRows(cols, PARALLEL_GRAIN), (from, to) -> {
            for (int r = from; r < to; r++) {
                long base = (long) r * cols;
                int c = 0;
                for (int bound = F.loopBound(cols); c < bound; c += LANES) {
                    f32(xs, base + c).add(FloatVector.fromArray(F, vs, c)).intoMemorySegment(xs, (base + c) * 4, Widening.LE);
                }
                for (; c < cols; c++) {
                    setF32(xs, base + c, getF32(xs, base + c) + vs[c]);
                }
            }
        });
    }

    /**
     * acc[c] += Σ_r x[r, c]: the gradient of {@link #addRowVector} with respect to the vector. Summed over rows
     * in a fixed order per column, so the result does not depend on the thread count.
     */
    public static void addColumnSums(Tensor acc, Tensor x) {
        Checks.requireF32("VectorMath.addColumnSums", acc, x);
        int cols = x.cols(), rows = x.rows();
        Checks.require(acc.size() == cols, () -> "VectorMath.addColumnSums: " + acc + " does not match the rows of " + x);
        MemorySegment as = acc.segment(), xs = x.segment();
        // Split over columns: each thread owns a stripe of acc and walks every row in order.
        int stripes = Math.max(1, (cols + LANES - 1) / LANES);
        Parallel.forRange(stripes, Math.max(1, PARALLEL_GRAIN / Math.max(1, rows * LANES)), (from, to) -> {
            int c0 = from * LANES, c1 = Math.min(cols, to * LANES);
            int c = c0;
            for (; c + LANES <= c1; c += LANES) {
                var sum = f32(as, c);
                for (int r = 0; r < rows; r++) {
                    sum = sum.add(f32(xs, (long) r * cols + c));
                }
                sum.intoMemorySegment(as, (long) c * 4, Widening.LE);
            }
            for (; c < c1; c++) {
                float sum = getF32(as, c);
                for (int r = 0; r < rows; r++) {
                    sum += getF32(xs, (long) r * cols + c);
                }
                setF32(as, c, sum);
            }
        });
    }

    // ---- segment-level primitives shared by the kernels ----

    /**
     * Σ a·b over F32 a and b of type {@code bType}; four accumulators hide the FMA latency. {@code lanes} (at least
     * LANES floats, the caller's, reused) takes the accumulator for its lane sum: {@link Lanes#sum(FloatVector)}'s
     * 39 bytecodes are past what C2 inlines at a call site it finds cold, and in about one JVM in three it did not
     * inline it here, where attention calls this for every key, and the vector went through the call boxed (a
     * 16-sequence decode spent a fifth of its time there and ran at two thirds of its speed). The store and the
     * scalar sum cost no boxing wherever C2 puts them.
     */
    static float dot(MemorySegment a, long aOffset, DType bType, MemorySegment b, long bOffset, int length,
                     float[] lanes) {
        return switch (bType) {
            case F32 -> dotF32(a, aOffset, b, bOffset, length, lanes);
            default -> dotWidening(a, aOffset, bType, b, bOffset, length, lanes);
        };
    }

    private static float dotF32(MemorySegment a, long aOffset, MemorySegment b, long bOffset, int length,
                                float[] lanes) {
        var acc0 = FloatVector.zero(F);
        var acc1 = FloatVector.zero(F);
        var acc2 = FloatVector.zero(F);
        var acc3 = FloatVector.zero(F);
        int i = 0;
        for (int bound = length - 4 * LANES; i <= bound; i += 4 * LANES) {
            acc0 = f32(a, aOffset + i).fma(f32(b, bOffset + i), acc0);
            acc1 = f32(a, aOffset + i + LANES).fma(f32(b, bOffset + i + LANES), acc1);
            acc2 = f32(a, aOffset + i + 2 * LANES).fma(f32(b, bOffset + i + 2 * LANES), acc2);
            acc3 = f32(a, aOffset + i + 3 * LANES).fma(f32(b, bOffset + i + 3 * LANES), acc3);
        }
        for (int bound = F.loopBound(length); i < bound; i += LANES) {
            acc0 = f32(a, aOffset + i).fma(f32(b, bOffset + i), acc0);
        }
        float sum = Lanes.sum(acc0.add(acc1).add(acc2.add(acc3)), lanes);
        for (; i < length; i++) {
            sum += getF32(a, aOffset + i) * getF32(b, bOffset + i);
        }
        return sum;
    }

    /** Per-thread chunk into which 16-bit operands of dot are widened: one conversion loop, then an F32 dot. */
    private static final ThreadLocal<float[]> DOT_CHUNK = ThreadLocal.withInitial(() -> new float[1024]);

    private static float dotWidening(MemorySegment a, long aOffset, DType bType, MemorySegment b, long bOffset, int length,
                                     float[] lanes) {
        float[] chunk = DOT_CHUNK.get();
        MemorySegment cs = MemorySegment.ofArray(chunk);
        float sum = 0;
        for (int done = 0; done < length; done += chunk.length) {
            int count = Math.min(chunk.length, length - done);
            Widening.widen(bType, b, bOffset + done, chunk, 0, count);
            sum += dotF32(a, aOffset + done, cs, 0, count, lanes);
        }
        return sum;
    }

    /** y += a·x over {@code length} F32 elements. */
    static void axpy(float a, MemorySegment x, long xOffset, MemorySegment y, long yOffset, int length) {
        var va = FloatVector.broadcast(F, a);
        int i = 0;
        for (int bound = F.loopBound(length); i < bound; i += LANES) {
            f32(x, xOffset + i).fma(va, f32(y, yOffset + i)).intoMemorySegment(y, (yOffset + i) * 4, Widening.LE);
        }
        for (; i < length; i++) {
            setF32(y, yOffset + i, getF32(y, yOffset + i) + a * getF32(x, xOffset + i));
        }
    }

    /**
     * y[0, length) += a·x over F32 elements, y a Java array: a sum built in an array keeps its stores out of memory
     * segments, whose vector stores C2 did not always compile as such (a decode profile found them element by element).
     */
    static void axpy(float a, MemorySegment x, long xOffset, float[] y, int length) {
        var va = FloatVector.broadcast(F, a);
        int i = 0;
        for (int bound = F.loopBound(length); i < bound; i += LANES) {
            f32(x, xOffset + i).fma(va, FloatVector.fromArray(F, y, i)).intoArray(y, i);
        }
        for (; i < length; i++) {
            y[i] += a * getF32(x, xOffset + i);
        }
    }
}
