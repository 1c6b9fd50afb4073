package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.backend.TopKRouting;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The {@link Backend} of one GPU, computing in its device's {@link Precision}: F32 gradients and arithmetic, products
 * through cuBLAS, the rest through moe4j's PTX kernels (cuda/src/main/cuda). Everything is queued on the device's one
 * stream; the host waits only where a value must come back (router logits outside decoding steps, which route on
 * the device; losses; the logits a sampler reads).
 *
 * <p>In {@link Precision#BF16} activations are BF16 and matrix products take BF16 operands: an F32 operand (a
 * trainable parameter, a gradient) is converted on the way, and the BF16 copy of a parameter is kept for the rest of
 * the memory scope, so a training step converts each weight once. Attention runs as flash attention on the tensor
 * cores for heads of 64 or 128 ({@code flash.cu}), forward and backward, and on the CUDA cores otherwise
 * ({@code attention.cu}). In {@link Precision#F32} activations are F32, every product is a true F32 one (no TF32,
 * see {@link Cublas}), attention always takes the CUDA-core kernels' F32 entry points, and the one-pass decoding
 * path for BF16 experts steps aside for the grouped products.
 *
 * <p>Why the precision belongs to the device: every operation finds its backend through its operands' device
 * ({@link Backend#of}), and {@link #activationType()} decides what the model allocates, so a precision fixed when the
 * device is opened reaches every operation, the placed weights and the KV cache with no flag passed anywhere; and
 * since tensors of a BF16 and an F32 device of one GPU are on different devices, the two cannot mix unnoticed. A
 * backend that chose F32 arithmetic from its operands' dtypes could not: its activations' dtype must be known before
 * any operand exists, and a stray BF16 operand would silently lower a result's accuracy.
 */
public final class CudaBackend implements Backend {
    private static final int THREADS = 256;
    private static final int ATTENTION_TILE = 32;
    private static final int ATTENTION_THREADS = 256;
    private static final int MAX_HEAD_DIM = 256;
    private static final int ROWS_PER_CHUNK = 256;
    /** Set {@code -Dmoe4j.cuda.flash=false} to run every attention on the CUDA-core kernels. */
    private static final boolean FLASH = !"false".equals(System.getProperty("moe4j.cuda.flash"));
    /** Set {@code -Dmoe4j.cuda.gemv=false} to run every product through cuBLAS (to measure what the kernel gains). */
    private static final boolean GEMV = !"false".equals(System.getProperty("moe4j.cuda.gemv"));

    private final CudaDevice device;
    /** Whether every product runs in F32 ({@link Precision#F32}) rather than on BF16 operands. */
    private final boolean f32;
    /** Device copies of the host's rotary tables (cos, sin), made once per table. */
    private final Map<RopeTable, Tensor[]> ropeTables = new IdentityHashMap<>();
    /** BF16 copies of F32 parameters for the scope they were made in, by address. */
    private final Map<Long, Tensor> bf16Copies = new HashMap<>();

    CudaBackend(CudaDevice device) {
        this.device = device;
        this.f32 = device.precision() == Precision.F32;
    }

    @Override
    public CudaDevice device() {
        return device;
    }

    /** BF16, or F32 when the device computes in {@link Precision#F32}. */
    @Override
    public DType activationType() {
        return device.precision().activationType();
    }

    // ---- helpers ----

    private Kernel kernel(String module, String name) {
        return device.kernel(module, name);
    }

    private Kernel k(String name) {
        return device.kernel("backend", name);
    }

    private int blocks(long n) {
        return DeviceOps.blocks(device, n, THREADS);
    }

    /** The run-time type flag of an operand: 0 for F32, 1 for BF16. */
    private static int t(Tensor x) {
        return switch (x.dtype()) {
            case F32 -> 0;
            case BF16 -> 1;
            default -> throw new IllegalArgumentException("the GPU computes on F32 and BF16 tensors, not " + x);
        };
    }

    private void own(Tensor... tensors) {
        for (Tensor x : tensors) {
            if (x != null && x.device() != device) {
                throw new IllegalArgumentException(x + " is not on " + device.name());
            }
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    private static int rowThreads(int cols) {
        return Math.max(32, Math.min(THREADS, (cols + 31) / 32 * 32));
    }

    /** Host ints as a new I32 device tensor of this scope (at least one element). */
    Tensor ints(int[] values) {
        Tensor out = device.allocate(DType.I32, Math.max(1, values.length));
        if (values.length > 0) {
            device.copyToDevice(out.slice(0, values.length), MemorySegment.ofArray(values));
        }
        return out;
    }

    /** Host floats as a new F32 device tensor of this scope (at least one element). */
    Tensor floats(float[] values) {
        Tensor out = device.allocate(DType.F32, Math.max(1, values.length));
        if (values.length > 0) {
            device.copyToDevice(out.slice(0, values.length), MemorySegment.ofArray(values));
        }
        return out;
    }

    private Tensor longs(long[] values) {
        Tensor out = device.allocate(DType.I64, values.length);
        device.copyToDevice(out, MemorySegment.ofArray(values));
        return out;
    }

    /** x as BF16: itself, or a converted copy (kept for the scope when x is a parameter, which cannot change in one). */
    Tensor bf16(Tensor x) {
        if (x.dtype() == DType.BF16) {
            return x;
        }
        boolean cache = MemoryScope.active() && device.isPersistent(x.address());
        if (cache) {
            Tensor cached = bf16Copies.get(x.address());
            if (cached != null && cached.size() == x.size()) {
                return cached.reshape(x.shape());
            }
        }
        Tensor out = device.allocate(DType.BF16, x.shape());
        k("ew_convert").launch(blocks(x.size()), THREADS, x, t(x), out, 1, x.size());
        if (cache) {
            long key = x.address();
            bf16Copies.put(key, out);
            MemoryScope.adopt(() -> bf16Copies.remove(key));
        }
        return out;
    }

    /** x as F32: itself, or a widened copy (exact from BF16). */
    private Tensor f32(Tensor x) {
        if (x == null || x.dtype() == DType.F32) {
            return x;
        }
        Tensor out = device.allocate(DType.F32, x.shape());
        k("ew_convert").launch(blocks(x.size()), THREADS, x, t(x), out, 0, x.size());
        return out;
    }

    private static void requireF32(Tensor x, String what) {
        if (x != null && x.dtype() != DType.F32) {
            throw new IllegalArgumentException(what + " must be F32 on the GPU, got " + x);
        }
    }

    // ---- memory ----

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        return device.zeros(dtype, shape);
    }

    @Override
    public Tensor empty(DType dtype, int... shape) {
        return device.allocate(dtype, shape);
    }

    @Override
    public Tensor copyOf(Tensor x) {
        own(x);
        Tensor out = device.allocate(x.dtype(), x.shape());
        device.copyOnDevice(out, x);
        return out;
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        require(dst.dtype() == src.dtype() && dst.size() == src.size(), "copy of " + src + " into " + dst
                + ": between devices the dtypes and sizes must agree");
        if (!dst.isHost() && !src.isHost()) {
            own(dst, src);
            device.copyOnDevice(dst, src);
        } else if (!dst.isHost()) {
            own(dst);
            device.copyToDevice(dst, src.segment());
        } else {
            own(src);
            device.copyToHost(dst.segment(), src);
        }
    }

    @Override
    public Tensor toHost(Tensor x) {
        if (x.isHost()) {
            return x;
        }
        own(x);
        Tensor out = Tensor.zeros(x.dtype(), x.shape());
        device.copyToHost(out.segment(), x);
        return out;
    }

    @Override
    public Tensor upload(Tensor host, DType dtype) {
        if (!host.isHost()) {
            throw new IllegalArgumentException("upload takes a host tensor, got " + host);
        }
        return device.upload(host, dtype);
    }

    @Override
    public Tensor convert(Tensor x, DType dtype) {
        own(x);
        return switch (dtype) {
            case F32 -> f32(x);
            case BF16 -> bf16(x);
            default -> throw new IllegalArgumentException("the GPU converts to F32 or BF16, not " + dtype);
        };
    }

    @Override
    public void fill(Tensor x, float value) {
        own(x);
        if (Float.floatToRawIntBits(value) == 0) {
            device.fillBytes(x, (byte) 0);
        } else if (x.dtype() == DType.F32) {
            device.fillInts(x, Float.floatToRawIntBits(value));
        } else {
            k("ew_fill").launch(blocks(x.size()), THREADS, x, t(x), x.size(), value);
        }
    }

    // ---- products ----

    /**
     * In F32 precision an F32 result of F32 operands (a BF16 operand widened exactly): cuBLAS multiplies F32 matrices
     * only into F32.
     */
    private static void requireF32Result(Tensor y) {
        requireF32(y, "a product's result in F32 precision");
    }

    /**
     * y = x·wᵀ. In BF16 precision on the tensor cores in BF16 with F32 accumulation; an F32 result of F32 weights (a
     * router's or a shared expert gate's logits) is computed in F32 throughout, x widened exactly, so that routing
     * sees the scores the CPU computes from the same activations rather than those of BF16-rounded router weights.
     * In F32 precision every product is F32 throughout.
     */
    @Override
    public void matmul(Tensor y, Tensor x, Tensor w) {
        own(y, x, w);
        if (f32 || (y.dtype() == DType.F32 && w.dtype() == DType.F32)) {
            requireF32Result(y);
            // F32 precision keeps cuBLAS's true F32 products; a router's F32 product may take the kernel, which
            // widens x exactly as f32() would
            if (!f32 && fewRows(y, x, w)) {
                return;
            }
            device.blas().linear(y, f32(x), f32(w), 0f);
            return;
        }
        Tensor x16 = bf16(x), w16 = bf16(w);
        if (!fewRows(y, x16, w16)) {
            device.blas().linear(y, x16, w16, 0f);
        }
    }

    /** Rows of x up to which a product takes gemv.cu's kernel instead of cuBLAS. */
    static final int FEW_ROWS = 8;

    /**
     * y = x·wᵀ for a few rows of x (a decoding step) by gemv.cu's kernel, which reads w once with F32 accumulation as
     * cuBLAS does, without cuBLAS's host work per call: false (doing nothing) for more rows, where cuBLAS runs.
     */
    private boolean fewRows(Tensor y, Tensor x, Tensor w) {
        int rows = x.rows(), in = x.cols(), out = w.rows();
        if (!GEMV || rows > FEW_ROWS || rows == 0) {
            return false;
        }
        require(w.cols() == in && y.rows() == rows && y.cols() == out, "matmul: " + y + " = " + x + " · " + w + "ᵀ");
        String name = "gemv_w" + (t(w) == 1 ? 16 : 32) + "_x" + (t(x) == 1 ? 16 : 32);
        kernel("gemv", name).launch((out + GEMV_WARPS - 1) / GEMV_WARPS, 32 * GEMV_WARPS, x, w, rows, in, out, y, t(y));
        return true;
    }

    /** Outputs (warps) per block of the few-rows kernel: small blocks, so that narrow matrices still fill the GPU. */
    private static final int GEMV_WARPS = 4;

    @Override
    public void multiply(Tensor y, Tensor a, Tensor b) {
        own(y, a, b);
        if (f32) {
            requireF32Result(y);
            device.blas().multiply(y, f32(a), f32(b), 0f);
            return;
        }
        device.blas().multiply(y, bf16(a), bf16(b), 0f);
    }

    @Override
    public void matmulBackwardInput(Tensor dx, Tensor dy, Tensor w, boolean accumulate) {
        own(dx, dy, w);
        if (f32) {
            requireF32Result(dx);
            device.blas().linearBackwardInput(dx, f32(dy), f32(w), accumulate ? 1f : 0f);
            return;
        }
        device.blas().linearBackwardInput(dx, bf16(dy), bf16(w), accumulate ? 1f : 0f);
    }

    @Override
    public void matmulBackwardWeight(Tensor dw, Tensor dy, Tensor x, boolean accumulate) {
        own(dw, dy, x);
        if (dy.rows() == 0) {
            if (!accumulate) {
                fill(dw, 0f);
            }
            return;
        }
        if (f32 || (dw.dtype() == DType.F32 && dy.dtype() == DType.F32 && x.dtype() == DType.F32)) {
            // F32 operands throughout (F32 precision, or a router's gradient): no rounding of the logits' gradient
            requireF32Result(dw);
            device.blas().linearBackwardWeight(dw, f32(dy), f32(x), accumulate ? 1f : 0f);
            return;
        }
        device.blas().linearBackwardWeight(dw, bf16(dy), bf16(x), accumulate ? 1f : 0f);
    }

    // ---- elementwise ----

    private static void sameSize(Tensor a, Tensor b, String op) {
        require(a.size() == b.size(), op + ": " + a + " and " + b + " differ in size");
    }

    @Override
    public void add(Tensor y, Tensor a, Tensor b) {
        own(y, a, b);
        sameSize(a, b, "add");
        sameSize(y, a, "add");
        k("ew_add").launch(blocks(y.size()), THREADS, a, t(a), b, t(b), y, t(y), y.size());
    }

    @Override
    public void addInPlace(Tensor acc, Tensor x) {
        axpy(1f, x, acc);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        own(x, y);
        sameSize(x, y, "axpy");
        k("ew_axpy").launch(blocks(y.size()), THREADS, alpha, x, t(x), y, t(y), y.size());
    }

    @Override
    public void mul(Tensor y, Tensor a, Tensor b) {
        own(y, a, b);
        sameSize(a, b, "mul");
        sameSize(y, a, "mul");
        k("ew_mul").launch(blocks(y.size()), THREADS, a, t(a), b, t(b), y, t(y), y.size());
    }

    @Override
    public void scale(Tensor x, float s) {
        own(x);
        k("ew_scale").launch(blocks(x.size()), THREADS, x, t(x), x.size(), s);
    }

    @Override
    public void addRowVector(Tensor x, Tensor v) {
        own(x, v);
        require(v.size() == x.cols(), "addRowVector: " + v + " for rows of " + x);
        k("add_row_vector").launch(blocks(x.size()), THREADS, x, t(x), v, t(v), x.rows(), x.cols());
    }

    @Override
    public void addColumnSums(Tensor acc, Tensor x) {
        own(acc, x);
        requireF32(acc, "a column sum's accumulator");
        int rows = x.rows(), cols = x.cols();
        require(acc.size() == cols, "addColumnSums: " + acc + " for columns of " + x);
        if (rows == 0) {
            return;
        }
        int chunks = (rows + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
        Tensor partial = device.allocate(DType.F32, chunks, cols);
        k("column_partial_sums").launchGrid((cols + THREADS - 1) / THREADS, chunks, 1, THREADS, 1, 1, 0, x, t(x), rows,
                cols, ROWS_PER_CHUNK, partial);
        k("column_sums_add").launch((cols + THREADS - 1) / THREADS, THREADS, partial, chunks, cols, acc);
    }

    @Override
    public void scaleRows(Tensor y, Tensor x, Tensor g) {
        own(y, x, g);
        k("scale_rows").launch(blocks(x.size()), THREADS, x, t(x), g, t(g), x.rows(), x.cols(), y, t(y));
    }

    @Override
    public void scaleRowsBackward(Tensor dx, Tensor dg, Tensor dy, Tensor x, Tensor g) {
        own(dx, dg, dy, x, g);
        requireF32(dx, "dx");
        requireF32(dg, "dg");
        k("scale_rows_backward").launch(x.rows(), rowThreads(x.cols()), dy, t(dy), x, t(x), g, t(g), x.rows(), x.cols(),
                dx, dg);
    }

    @Override
    public void sigmoid(Tensor y, Tensor x) {
        own(y, x);
        k("ew_sigmoid").launch(blocks(x.size()), THREADS, x, t(x), y, t(y), x.size());
    }

    @Override
    public void sigmoidBackward(Tensor dx, Tensor dy, Tensor y) {
        own(dx, dy, y);
        k("ew_sigmoid_backward").launch(blocks(y.size()), THREADS, dx, t(dx), dy, t(dy), y, t(y), y.size());
    }

    @Override
    public void clamp(Tensor y, Tensor x, float limit) {
        own(y, x);
        k("ew_clamp").launch(blocks(x.size()), THREADS, x, t(x), y, t(y), x.size(), limit);
    }

    @Override
    public void clampBackward(Tensor dx, Tensor dy, Tensor x, float limit) {
        own(dx, dy, x);
        k("ew_clamp_backward").launch(blocks(x.size()), THREADS, dx, t(dx), dy, t(dy), x, t(x), x.size(), limit);
    }

    @Override
    public void activation(Activation kind, Tensor y, Tensor x) {
        own(y, x);
        k("ew_activation").launch(blocks(x.size()), THREADS, kind.ordinal(), x, t(x), y, t(y), x.size());
    }

    @Override
    public void activationBackward(Activation kind, Tensor dx, Tensor dy, Tensor x) {
        own(dx, dy, x);
        k("ew_activation_backward").launch(blocks(x.size()), THREADS, kind.ordinal(), dx, t(dx), dy, t(dy), x, t(x),
                x.size(), 1);
    }

    @Override
    public void copyColumns(Tensor dst, int dstFrom, Tensor src, int srcFrom, int width, boolean accumulate) {
        own(dst, src);
        int rows = src.rows();
        require(dst.rows() == rows && dstFrom + width <= dst.cols() && srcFrom + width <= src.cols(),
                "copyColumns: " + width + " columns from " + srcFrom + " of " + src + " to " + dstFrom + " of " + dst);
        k("copy_columns").launch(blocks((long) rows * width), THREADS, dst, t(dst), dst.cols(), dstFrom, src, t(src),
                src.cols(), srcFrom, rows, width, accumulate ? 1 : 0);
    }

    // ---- normalisation, gating, positions ----

    @Override
    public void rmsNorm(Tensor y, Tensor x, Tensor weight, float eps) {
        own(y, x, weight);
        require(y.size() == x.size() && (weight == null || weight.size() == x.cols()), "rmsNorm: shapes");
        k("rms_norm").launch(x.rows(), rowThreads(Math.min(x.cols(), 1024)), x, t(x), f32(weight), x.rows(), x.cols(),
                eps, y, t(y));
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dy, Tensor x, Tensor weight, float eps) {
        own(dx, dWeight, dy, x, weight);
        requireF32(dx, "dx");
        requireF32(dWeight, "dWeight");
        int rows = x.rows(), cols = x.cols();
        Tensor inv = device.allocate(DType.F32, Math.max(1, rows));
        k("rms_norm_backward").launch(rows, rowThreads(Math.min(cols, 1024)), dy, t(dy), x, t(x), f32(weight), rows,
                cols, eps, dx, inv);
        if (dWeight != null && rows > 0) {
            int chunks = (rows + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
            Tensor partial = device.allocate(DType.F32, chunks, cols);
            k("rms_norm_weight_partial").launchGrid((cols + THREADS - 1) / THREADS, chunks, 1, THREADS, 1, 1, 0, dy,
                    t(dy), x, t(x), inv, rows, cols, ROWS_PER_CHUNK, partial);
            k("column_sums_add").launch((cols + THREADS - 1) / THREADS, THREADS, partial, chunks, cols, dWeight);
        }
    }

    /** The glu kernels' unit: 0-3 an activation (in moe4j's Activation order), 4 gpt-oss's clamped unit. */
    private static int gluKind(GluParams p) {
        return switch (p) {
            case GluParams.Gated g -> g.activation().ordinal();
            case GluParams.Clamped c -> 4;
        };
    }

    private static float gluAlpha(GluParams p) {
        return p instanceof GluParams.Clamped c ? c.alpha() : 0f;
    }

    private static float gluLimit(GluParams p) {
        return p instanceof GluParams.Clamped c ? c.limit() : 0f;
    }

    @Override
    public void glu(Tensor y, Tensor gate, Tensor up, GluParams params) {
        own(y, gate, up);
        int rows = gate.rows(), inter = gate.cols();
        require(up.rows() == rows && up.cols() == inter && y.size() == gate.size(), "glu: shapes");
        k("glu_forward").launch(blocks((long) rows * inter), THREADS, gate, t(gate), (long) inter, 1, up, t(up),
                (long) inter, 1, rows, inter, gluKind(params), gluAlpha(params), gluLimit(params), y, t(y));
    }

    @Override
    public void gluBackward(Tensor dGate, Tensor dUp, Tensor dy, Tensor gate, Tensor up, GluParams params) {
        own(dGate, dUp, dy, gate, up);
        int rows = gate.rows(), inter = gate.cols();
        k("glu_backward").launch(blocks((long) rows * inter), THREADS, gate, t(gate), (long) inter, 1, up, t(up),
                (long) inter, 1, dy, t(dy), rows, inter, gluKind(params), gluAlpha(params), gluLimit(params), dGate,
                dGate == null ? 0 : t(dGate), (long) inter, 1, dUp, dUp == null ? 0 : t(dUp), (long) inter, 1, 1);
    }

    /** Where gate and up element i of a fused row start and how far apart consecutive i are. */
    private record FusedLayout(long gateOffset, int gateStep, long upOffset, int upStep) {
        static FusedLayout of(GluParams p, int inter) {
            return p.layout() == GluParams.Layout.HALVES ? new FusedLayout(0, 1, inter, 1) : new FusedLayout(0, 2, 1, 2);
        }
    }

    @Override
    public void glu(Tensor y, Tensor gateUp, GluParams params) {
        own(y, gateUp);
        int rows = gateUp.rows(), inter = gateUp.cols() / 2;
        require(y.rows() == rows && y.cols() == inter, "glu: " + y + " for fused rows " + gateUp);
        if (params.equals(GluParams.swiglu()) && y.dtype() == DType.BF16 && gateUp.dtype() == DType.BF16) {
            kernel(DeviceOps.MODULE, "swiglu_forward").launch(blocks((long) rows * inter / 8 + 1), THREADS, gateUp, rows,
                    inter, y);
            return;
        }
        var l = FusedLayout.of(params, inter);
        long es = gateUp.dtype().byteSize();
        k("glu_forward").launch(blocks((long) rows * inter), THREADS, gateUp.address() + l.gateOffset() * es, t(gateUp),
                2L * inter, l.gateStep(), gateUp.address() + l.upOffset() * es, t(gateUp), 2L * inter, l.upStep(), rows,
                inter, gluKind(params), gluAlpha(params), gluLimit(params), y, t(y));
    }

    @Override
    public void gluBackward(Tensor dGateUp, Tensor dy, Tensor gateUp, GluParams params) {
        own(dGateUp, dy, gateUp);
        int rows = gateUp.rows(), inter = gateUp.cols() / 2;
        if (params.equals(GluParams.swiglu()) && dGateUp.dtype() == DType.BF16 && dy.dtype() == DType.BF16
                && gateUp.dtype() == DType.BF16) {
            kernel(DeviceOps.MODULE, "swiglu_backward").launch(blocks((long) rows * inter / 8 + 1), THREADS, gateUp, dy,
                    rows, inter, dGateUp);
            return;
        }
        var l = FusedLayout.of(params, inter);
        long es = gateUp.dtype().byteSize(), ds = dGateUp.dtype().byteSize();
        k("glu_backward").launch(blocks((long) rows * inter), THREADS, gateUp.address() + l.gateOffset() * es,
                t(gateUp), 2L * inter, l.gateStep(), gateUp.address() + l.upOffset() * es, t(gateUp), 2L * inter,
                l.upStep(), dy, t(dy), rows, inter, gluKind(params), gluAlpha(params), gluLimit(params),
                dGateUp.address() + l.gateOffset() * ds, t(dGateUp), 2L * inter, l.gateStep(),
                dGateUp.address() + l.upOffset() * ds, t(dGateUp), 2L * inter, l.upStep(), 0);
    }

    /** The device copy of a host rotary table: cos and sin [positions, rotaryDim / 2], F32, the same numbers. */
    private Tensor[] ropeTable(RopeTable table) {
        return ropeTables.computeIfAbsent(table, tb -> MemoryScope.persistent(() -> {
            int half = tb.rotaryDim() / 2, positions = tb.maxPositions();
            float[] c = new float[positions * half], s = new float[positions * half];
            for (int p = 0; p < positions; p++) {
                for (int i = 0; i < half; i++) {
                    c[p * half + i] = tb.cos(p, i);
                    s[p * half + i] = tb.sin(p, i);
                }
            }
            return new Tensor[] {device.upload(Tensor.of(c, positions, half)), device.upload(Tensor.of(s, positions, half))};
        }));
    }

    private void rotate(Tensor x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim,
                        float sinSign) {
        for (int p : positions) {
            require(p >= 0 && p < table.maxPositions(), "rope: position " + p + " outside the table [0, "
                    + table.maxPositions() + ")");
        }
        rotate(x, positions.length, positions.length > 0 ? ints(positions) : null, table, layout, headDim, rotaryDim,
                sinSign);
    }

    private void rotate(Tensor x, int tokens, Tensor positions, RopeTable table, RopeLayout layout, int headDim,
                        int rotaryDim, float sinSign) {
        own(x);
        require(rotaryDim == table.rotaryDim() && rotaryDim % 2 == 0 && rotaryDim <= headDim && tokens > 0
                        && x.size() % ((long) tokens * headDim) == 0,
                "rope: " + x + " is not " + tokens + " tokens of whole heads of " + headDim + " (rotary " + rotaryDim + ")");
        Tensor[] cs = ropeTable(table);
        int heads = (int) (x.size() / tokens / headDim);
        k("rope_in_place").launch(blocks((long) tokens * heads * (rotaryDim / 2)), THREADS, x, t(x), positions,
                cs[0], cs[1], tokens, heads, headDim, rotaryDim, layout == RopeLayout.INTERLEAVED ? 1 : 0, sinSign);
    }

    /** The positions are not checked against the table here (they are on the device): the caller's table covers them. */
    @Override
    public void rope(Tensor x, Tensor positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        own(positions);
        require(positions.dtype() == DType.I32, "rope: positions must be I32, got " + positions);
        rotate(x, (int) positions.size(), positions, table, layout, headDim, rotaryDim, 1f);
    }

    @Override
    public void rope(Tensor x, int[] positions, RopeTable table, RopeLayout layout, int headDim, int rotaryDim) {
        rotate(x, positions, table, layout, headDim, rotaryDim, 1f);
    }

    @Override
    public void ropeBackward(Tensor dx, int[] positions, RopeTable table, RopeLayout layout, int headDim,
                             int rotaryDim) {
        rotate(dx, positions, table, layout, headDim, rotaryDim, -1f);
    }

    // ---- attention ----

    private static void checkAttention(Tensor out, Tensor q, Tensor k, Tensor v, int sequences, int queryStart,
                                       AttentionSpec s) {
        require(s.causal(), "attention: the GPU kernels are causal only; run bidirectional attention on the CPU");
        require(s.headDim() <= MAX_HEAD_DIM && s.valueHeadDim() <= MAX_HEAD_DIM,
                "attention: head dimensions up to " + MAX_HEAD_DIM + " on the GPU, got " + s);
        DType type = q.dtype();
        require((type == DType.BF16 || type == DType.F32) && k.dtype() == type && v.dtype() == type
                        && out.dtype() == type, "attention on the GPU takes q, k, v and output of one dtype, BF16 or F32;"
                        + " got q " + q + ", k " + k + ", v " + v + ", out " + out);
        require(sequences > 0 && q.rows() % sequences == 0 && k.rows() % sequences == 0 && v.rows() == k.rows()
                        && q.cols() == s.heads() * s.headDim() && k.cols() == s.kvHeads() * s.headDim()
                        && v.cols() == s.kvHeads() * s.valueHeadDim() && out.rows() == q.rows()
                        && out.cols() == s.heads() * s.valueHeadDim()
                        && queryStart >= 0 && queryStart + q.rows() / sequences <= k.rows() / sequences,
                "attention: q " + q + ", k " + k + ", v " + v + ", out " + out + " in " + sequences
                        + " sequence(s) from position " + queryStart + " do not fit " + s);
    }

    /** attention.cu's entry point {@code name} for q's element type: the name itself for BF16, name_f32 for F32. */
    private Kernel attentionKernel(String name, Tensor q) {
        return kernel("attention", q.dtype() == DType.F32 ? name + "_f32" : name);
    }

    /**
     * Whether the tensor-core kernel takes this shape: heads of 64 or 128, equal for keys and values (and BF16
     * operands, which {@link #attend} checks).
     */
    public static boolean flashSupports(AttentionSpec s) {
        return FLASH && s.headDim() == s.valueHeadDim() && (s.headDim() == 64 || s.headDim() == 128);
    }

    private static int tiledSharedBytes(AttentionSpec s, boolean backward) {
        int d = s.headDim() + 1, dv = s.valueHeadDim() + 1;
        int tile = ATTENTION_TILE;
        return 4 * (2 * tile * d + tile * dv + tile * (tile + 1) + (backward ? tile * dv : 0));
    }

    /**
     * Causal attention of q's rows (positions queryStart.. of each sequence) over k and v into out, on the tensor
     * cores where the shape and dtype (BF16) allow and {@code tensorCores} is set; lse (F32 [rows, heads]) and sinks
     * may be null.
     */
    public void attend(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int sequences, int queryStart, AttentionSpec s,
                Tensor sinks, boolean tensorCores) {
        checkAttention(out, q, k, v, sequences, queryStart, s);
        attend(out, lse, q, k, v, sequences, queryStart, null, s, sinks, tensorCores);
    }

    /**
     * {@link #attend}, the queries' first position read from {@code queryStartAt} on the device when it is not null
     * (then k and v hold at least that many rows plus q's, which the caller ensures, and queryStart is not used).
     */
    private void attend(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int sequences, int queryStart,
                        Tensor queryStartAt, AttentionSpec s, Tensor sinks, boolean tensorCores) {
        int t = q.rows() / sequences, keys = k.rows() / sequences;
        Tensor sinkValues = f32(sinks);
        if (tensorCores && q.dtype() == DType.BF16 && flashSupports(s)) {
            int d = s.headDim();
            int shared = 2 * 2 * 64 * (d + 8) * 2;
            kernel("flash", d == 64 ? "flash_attention_d64" : "flash_attention_d128").launchGrid((t + 63) / 64,
                    s.heads(), sequences, 128, 1, 1, shared, q, k, v, t, keys, s.heads(), s.kvHeads(), d, d,
                    s.scale(), queryStart, s.slidingWindow(), sinkValues, out, lse, queryStartAt);
            return;
        }
        attentionKernel("attention_forward", q).launchGrid((t + ATTENTION_TILE - 1) / ATTENTION_TILE, s.heads(),
                sequences, ATTENTION_THREADS, 1, 1, tiledSharedBytes(s, false), q, k, v, t, keys, s.heads(),
                s.kvHeads(), s.headDim(), s.valueHeadDim(), s.scale(), queryStart, s.slidingWindow(), sinkValues, out,
                lse, queryStartAt);
    }

    @Override
    public Object attention(Tensor y, Tensor q, Tensor k, Tensor v, int sequences, AttentionSpec spec, Tensor sinks,
                            boolean keep) {
        own(y, q, k, v, sinks);
        Tensor lse = keep ? device.allocate(DType.F32, q.rows(), spec.heads()) : null;
        attend(y, lse, q, k, v, sequences, 0, spec, sinks, true);
        return lse;
    }

    @Override
    public void attentionBackward(Object saved, Tensor dq, Tensor dk, Tensor dv, Tensor dSinks, Tensor dy, Tensor q,
                                  Tensor k, Tensor v, Tensor y, int sequences, AttentionSpec s, Tensor sinks) {
        attendBackward((Tensor) saved, dq, dk, dv, dSinks, dy, q, k, v, y, sequences, s, sinks, true);
    }

    /**
     * Attention's backward pass: adds the gradients of q, k, v and the sinks (each F32, null when not wanted) given
     * the output's gradient dy (F32), the forward's output y and its log-sum-exps lse. On the tensor cores
     * ({@code flash.cu}) where the shape and dtype allow as for {@link #attend} and {@code tensorCores} is set, else
     * on the CUDA cores ({@code attention.cu}); D = rowsum(dy ⊙ y) and the sinks' term come from the CUDA-core
     * prepare kernel either way.
     */
    public void attendBackward(Tensor lse, Tensor dq, Tensor dk, Tensor dv, Tensor dSinks, Tensor dy, Tensor q,
                               Tensor k, Tensor v, Tensor y, int sequences, AttentionSpec s, Tensor sinks,
                               boolean tensorCores) {
        own(dq, dk, dv, dSinks, dy, q, k, v, y, sinks, lse);
        checkAttention(y, q, k, v, sequences, 0, s);
        requireF32(dy, "attention's output gradient");
        for (Tensor grad : new Tensor[] {dq, dk, dv, dSinks}) {
            requireF32(grad, "attention's gradients");
        }
        int rows = q.rows(), t = rows / sequences, keys = k.rows() / sequences;
        // The kernels write every gradient; those nobody wants go to scratch.
        Tensor gq = dq != null ? dq : device.zeros(DType.F32, q.shape());
        Tensor gk = dk != null ? dk : device.zeros(DType.F32, k.shape());
        Tensor gv = dv != null ? dv : device.zeros(DType.F32, v.shape());
        Tensor sinkValues = f32(sinks);
        Tensor d = device.allocate(DType.F32, rows, s.heads());
        Tensor sinkTerm = dSinks != null ? device.allocate(DType.F32, rows, s.heads()) : null;
        long threads = (long) rows * s.heads() * 32;
        attentionKernel("attention_backward_prepare", y).launch((int) ((threads + 255) / 256), 256, dy, y, lse,
                sinkValues, rows, s.heads(), s.valueHeadDim(), d, sinkTerm);
        if (tensorCores && q.dtype() == DType.BF16 && flashSupports(s)) {
            // The tensor cores take dy's BF16 rounding, as they take the forward's BF16 operands; converted here,
            // not through bf16(), whose cache is for parameters, and a gradient's memory may be persistent.
            Tensor dy16 = device.allocate(DType.BF16, dy.shape());
            k("ew_convert").launch(blocks(dy.size()), THREADS, dy, 0, dy16, 1, dy.size());
            int hd = s.headDim();
            int shared = 2 * 64 * (hd + 8) * 2 + 64 * (64 + 8) * 2 + 2 * 2 * 64 * (hd + 8) * 2 + 2 * 2 * 64 * 4;
            kernel("flash", hd == 64 ? "flash_attention_backward_d64" : "flash_attention_backward_d128").launchGrid(
                    s.heads(), (keys + 63) / 64, sequences, 128, 1, 1, shared, q, k, v, dy16, lse, d, t, keys,
                    s.heads(), s.kvHeads(), hd, hd, s.scale(), 0, s.slidingWindow(), gq, gk, gv);
        } else {
            int shared = tiledSharedBytes(s, true);
            attentionKernel("attention_backward_dq", q).launchGrid((t + ATTENTION_TILE - 1) / ATTENTION_TILE,
                    s.heads(), sequences, ATTENTION_THREADS, 1, 1, shared, q, k, v, dy, lse, d, t, keys, s.heads(),
                    s.kvHeads(), s.headDim(), s.valueHeadDim(), s.scale(), 0, s.slidingWindow(), gq, 1);
            attentionKernel("attention_backward_dkdv", q).launchGrid((keys + ATTENTION_TILE - 1) / ATTENTION_TILE,
                    s.kvHeads(), sequences, ATTENTION_THREADS, 1, 1, shared, q, k, v, dy, lse, d, t, keys, s.heads(),
                    s.kvHeads(), s.headDim(), s.valueHeadDim(), s.scale(), 0, s.slidingWindow(), gk, gv, 1);
        }
        if (dSinks != null) {
            int heads = s.heads();
            k("column_sums_add").launch((heads + THREADS - 1) / THREADS, THREADS, sinkTerm, rows, heads, dSinks);
        }
    }

    @Override
    public void attentionWithCache(Tensor y, Tensor q, Tensor keys, Tensor values, int queryStart, AttentionSpec spec,
                                   Tensor sinks) {
        own(y, q, keys, values, sinks);
        attend(y, null, q, keys, values, 1, queryStart, spec, sinks, true);
    }

    @Override
    public void attentionAt(Tensor y, Tensor q, Tensor keys, Tensor values, Tensor position, AttentionSpec spec,
                            Tensor sinks) {
        own(y, q, keys, values, position, sinks);
        require(position.dtype() == DType.I32, "attentionAt: the position must be I32, got " + position);
        // the shapes as the direct path checks them, for a position of 0: the kernel's keys end at position + rows
        checkAttention(y, q, keys.slice(0, q.rows()), values.slice(0, q.rows()), 1, 0, spec);
        attend(y, null, q, keys, values, 1, 0, position, spec, sinks, true);
    }

    @Override
    public void writeRowsAt(Tensor kCache, Tensor vCache, Tensor position, Tensor k, Tensor v) {
        own(kCache, vCache, position, k, v);
        require(position.dtype() == DType.I32 && kCache.dtype() == k.dtype() && vCache.dtype() == v.dtype()
                        && k.rows() == v.rows() && kCache.cols() == k.cols() && vCache.cols() == v.cols()
                        && k.byteSize() % (4L * k.rows()) == 0 && v.byteSize() % (4L * v.rows()) == 0,
                "writeRowsAt: " + k + " and " + v + " into " + kCache + " and " + vCache);
        int rows = k.rows(), kWords = (int) (k.byteSize() / 4 / rows), vWords = (int) (v.byteSize() / 4 / rows);
        k("write_rows_at").launch(blocks((long) rows * (kWords + vWords)), THREADS, k, v, rows, kWords, vWords,
                position, kCache, vCache);
    }

    // ---- loss and lookup ----

    /** What the cross-entropy's backward step reuses: each row's log-sum-exp and the targets, on the device. */
    private record CrossEntropySaved(Tensor lse, Tensor targets) {
    }

    @Override
    public CrossEntropy crossEntropy(Tensor logits, int[] targets, int ignore) {
        own(logits);
        int n = logits.rows(), vocab = logits.cols();
        Tensor deviceTargets = ints(targets);
        Tensor lse = device.allocate(DType.F32, Math.max(1, n));
        Tensor loss = device.allocate(DType.F32, Math.max(1, n));
        k("cross_entropy").launch(n, THREADS, logits, t(logits), deviceTargets, n, vocab, ignore, lse, loss);
        float[] perRow = toHost(loss).toFloatArray();
        double sum = 0;
        int counted = 0;
        for (int i = 0; i < n; i++) {
            if (targets[i] != ignore) {
                sum += perRow[i];
                counted++;
            }
        }
        return new CrossEntropy((float) (counted == 0 ? 0 : sum / counted), counted,
                new CrossEntropySaved(lse, deviceTargets));
    }

    @Override
    public void crossEntropyBackward(Tensor dLogits, CrossEntropy forward, Tensor logits, int[] targets, int ignore,
                                     float g) {
        own(dLogits, logits);
        requireF32(dLogits, "the logits' gradient");
        var saved = (CrossEntropySaved) forward.saved();
        k("cross_entropy_backward").launch(logits.rows(), THREADS, logits, t(logits), saved.targets(), saved.lse(),
                logits.rows(), logits.cols(), ignore, g, dLogits);
    }

    @Override
    public void embedding(Tensor y, Tensor table, int[] ids) {
        gatherRows(y, table, ids);
    }

    /** The ids are not checked against the table here (they are on the device): the caller checked them. */
    @Override
    public void embedding(Tensor y, Tensor table, Tensor ids) {
        own(y, table, ids);
        int rows = (int) ids.size(), cols = table.cols();
        require(ids.dtype() == DType.I32 && y.rows() == rows && y.cols() == cols, "embedding: " + y + " for the ids "
                + ids + " of " + table);
        if (y.dtype() == DType.BF16 && table.dtype() == DType.BF16) {
            kernel(DeviceOps.MODULE, "gather_rows").launch(rows, rowThreads((cols + 7) / 8), table, ids, rows, cols, y);
        } else {
            k("gather_rows_any").launch(rows, rowThreads(cols), table, t(table), ids, rows, cols, y, t(y));
        }
    }

    @Override
    public void embeddingBackward(Tensor tableGrad, Tensor dy, int[] ids) {
        scatterAddRows(tableGrad, dy, ids, null);
    }

    // ---- the MoE layer's permutations ----

    @Override
    public void gatherRows(Tensor out, Tensor src, int[] index) {
        own(out, src);
        int rows = index.length, cols = src.cols();
        require(out.rows() == rows && out.cols() == cols, "gatherRows: " + out + " is not " + rows + " rows of " + src);
        for (int i : index) {
            if (i < 0 || i >= src.rows()) {
                throw new IndexOutOfBoundsException("gatherRows: index " + i + " outside [0, " + src.rows() + ")");
            }
        }
        if (rows == 0) {
            return;
        }
        Tensor deviceIndex = ints(index);
        if (out.dtype() == DType.BF16 && src.dtype() == DType.BF16) {
            kernel(DeviceOps.MODULE, "gather_rows").launch(rows, rowThreads((cols + 7) / 8), src, deviceIndex, rows, cols,
                    out);
        } else {
            k("gather_rows_any").launch(rows, rowThreads(cols), src, t(src), deviceIndex, rows, cols, out, t(out));
        }
    }

    @Override
    public void scatterAddRows(Tensor dst, Tensor src, int[] index, float[] weight) {
        own(dst, src);
        int n = index.length, cols = dst.cols();
        require(src.rows() == n && src.cols() == cols, "scatterAddRows: " + src + " is not " + n + " rows of " + dst);
        if (n == 0) {
            return;
        }
        // The sources of each destination row, in increasing order: one block adds them, a fixed order.
        int[] count = new int[dst.rows() + 1];
        for (int i : index) {
            if (i < 0 || i >= dst.rows()) {
                throw new IndexOutOfBoundsException("scatterAddRows: index " + i + " outside [0, " + dst.rows() + ")");
            }
            count[i + 1]++;
        }
        for (int r = 0; r < dst.rows(); r++) {
            count[r + 1] += count[r];
        }
        int[] order = new int[n], fill = Arrays.copyOf(count, dst.rows());
        for (int i = 0; i < n; i++) {
            order[fill[index[i]]++] = i;
        }
        int segments = 0;
        for (int r = 0; r < dst.rows(); r++) {
            segments += count[r + 1] > count[r] ? 1 : 0;
        }
        int[] starts = new int[segments + 1], target = new int[segments];
        for (int r = 0, s = 0; r < dst.rows(); r++) {
            if (count[r + 1] > count[r]) {
                starts[s] = count[r];
                target[s++] = r;
            }
        }
        starts[segments] = n;
        k("segment_rows_add").launch(segments, rowThreads(cols), src, t(src), ints(order), ints(starts), ints(target),
                weight == null ? null : floats(weight), segments, cols, dst, t(dst));
    }

    @Override
    public void addScaledRows(Tensor dst, Tensor src, float[] scale) {
        own(dst, src);
        int rows = scale.length, cols = dst.cols();
        k("add_scaled_rows").launch(blocks((long) rows * cols), THREADS, dst, t(dst), src, t(src), floats(scale), rows,
                cols);
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        own(x);
        int rows = scale.length, cols = x.cols();
        k("scale_rows_by").launch(blocks((long) rows * cols), THREADS, x, t(x), floats(scale), rows, cols);
    }

    @Override
    public void rowDots(float[] out, Tensor a, Tensor b) {
        own(a, b);
        int rows = out.length, cols = a.cols();
        if (rows == 0) {
            return;
        }
        Tensor dots = device.allocate(DType.F32, rows);
        k("row_dots").launch(rows, rowThreads(cols), a, t(a), b, t(b), rows, cols, dots);
        MemorySegment.copy(toHost(dots).segment(), 0, MemorySegment.ofArray(out), 0, 4L * rows);
    }

    @Override
    public void combineBackward(Tensor dy, float[] rowDots, Tensor dOut, Tensor y, int[] token, float[] weight) {
        own(dy, dOut, y);
        int rows = token.length, cols = dOut.cols();
        if (rows == 0) {
            return;
        }
        Tensor dots = device.allocate(DType.F32, rows);
        k("combine_rows_backward").launch(rows, rowThreads(cols), dOut, t(dOut), y, t(y), ints(token), floats(weight),
                rows, cols, dy, t(dy), dots);
        MemorySegment.copy(toHost(dots).segment(), 0, MemorySegment.ofArray(rowDots), 0, 4L * rows);
    }

    @Override
    public boolean smallBatchExperts(Tensor out, Tensor x, int[] token, int[] expert, float[] weight, Tensor[] gateUp,
                                     Tensor[] down) {
        own(out, x);
        ExpertTables tables = expertTables(out, gateUp, down);
        if (tables == null) {
            return false;
        }
        x = bf16(x);
        int rows = token.length, h = x.cols(), inter = tables.intermediate();
        Tensor act = device.allocate(DType.F32, rows, inter);
        Tensor deviceToken = ints(token), deviceExpert = ints(expert);
        kernel(DeviceOps.MODULE, "moe_rows_gate_up").launchGrid((inter + 7) / 8, rows, 1, 256, 1, 1, 0, x, deviceToken,
                deviceExpert, tables.gateUp(), h, inter, act);
        kernel(DeviceOps.MODULE, "moe_rows_down").launchGrid((h + 7) / 8, out.rows(), 1, 256, 1, 1, 0, act, deviceToken,
                deviceExpert, floats(weight), tables.down(), rows, h, inter, out);
        return true;
    }

    @Override
    public boolean routedExperts(Tensor out, Tensor x, Tensor experts, Tensor weights, Tensor[] gateUp, Tensor[] down) {
        own(out, x, experts, weights);
        require(experts.dtype() == DType.I32 && weights.dtype() == DType.F32 && experts.size() == weights.size()
                && experts.rows() == out.rows(), "routedExperts: " + experts + " and " + weights + " for " + out);
        ExpertTables tables = expertTables(out, gateUp, down);
        if (tables == null) {
            return false;
        }
        x = bf16(x);
        int tokens = out.rows(), k = experts.cols(), h = x.cols(), inter = tables.intermediate();
        Tensor act = device.allocate(DType.F32, tokens * k, inter);
        kernel(DeviceOps.MODULE, "moe_routed_gate_up").launchGrid((inter + 7) / 8, tokens * k, 1, 256, 1, 1, 0, x,
                experts, k, tables.gateUp(), h, inter, act);
        kernel(DeviceOps.MODULE, "moe_routed_down").launchGrid((h + 7) / 8, tokens, 1, 256, 1, 1, 0, act, experts,
                weights, k, tables.down(), h, inter, out);
        return true;
    }

    /** The device addresses of a layer's experts (gate+up and down per expert, 0 where absent), and their width. */
    private record ExpertTables(Tensor gateUp, Tensor down, int intermediate) {
    }

    /** Expert address tables by the addresses they hold: made once per layer, not uploaded every decoding step. */
    private final Map<AddressList, ExpertTables> expertTables = new HashMap<>();

    /** A list of device addresses compared by value, as a map key. */
    private record AddressList(long[] addresses) {
        @Override
        public boolean equals(Object o) {
            return o instanceof AddressList other && Arrays.equals(addresses, other.addresses);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(addresses);
        }
    }

    /**
     * The address tables of the one-pass expert kernels for these experts, or null where the kernels do not apply:
     * they read and write BF16 (F32 precision takes the grouped products), and trainable F32 experts take the
     * grouped products too. Entries may be null (experts no row chooses); the kernels never read those.
     */
    private ExpertTables expertTables(Tensor out, Tensor[] gateUp, Tensor[] down) {
        if (f32 || out.dtype() != DType.BF16) {
            return null;
        }
        int experts = gateUp.length, inter = -1;
        long[] addresses = new long[2 * experts];
        for (int e = 0; e < experts; e++) {
            if (gateUp[e] == null) {
                continue;
            }
            Tensor gu = gateUp[e], dn = down[e];
            own(gu, dn);
            if (gu.dtype() != DType.BF16 || dn.dtype() != DType.BF16) {
                return null;
            }
            inter = dn.cols();
            addresses[e] = gu.address();
            addresses[experts + e] = dn.address();
        }
        if (inter <= 0) {
            return null;
        }
        int width = inter;
        // Weights outlive every scope: so do their tables (a table names addresses only, never reads them here).
        return expertTables.computeIfAbsent(new AddressList(addresses), key -> MemoryScope.persistent(() ->
                new ExpertTables(longs(Arrays.copyOfRange(addresses, 0, experts)),
                        longs(Arrays.copyOfRange(addresses, experts, 2 * experts)), width)));
    }

    /** Experts per token that route_top_k chooses at most (its shared array of choices). */
    private static final int MAX_ROUTED_K = 64;
    /** route_top_k's group limits (kernels.cu). */
    private static final int MAX_ROUTING_GROUPS = 64, MAX_SCORED_PER_GROUP = 8;

    @Override
    public boolean routeTopK(Tensor experts, Tensor weights, Tensor logits, TopKRouting r) {
        own(experts, weights, logits, r.selectionBias());
        int tokens = logits.rows(), e = logits.cols(), k = r.k();
        require(logits.dtype() == DType.F32 && experts.dtype() == DType.I32 && weights.dtype() == DType.F32
                && experts.rows() == tokens && experts.cols() == k && weights.rows() == tokens && weights.cols() == k,
                "routeTopK: " + experts + " and " + weights + " for the logits " + logits + ", k = " + k);
        if (r.selectionBias() != null) {
            requireF32(r.selectionBias(), "the selection bias");
        }
        if (k > MAX_ROUTED_K || k > e || r.groups() > MAX_ROUTING_GROUPS || (r.groups() > 0
                && (e % r.groups() != 0 || r.scoredPerGroup() > Math.min(MAX_SCORED_PER_GROUP, e / r.groups())))) {
            return false;
        }
        if (tokens == 0) {
            return true;
        }
        int shared = 4 * (2 * e + MAX_ROUTING_GROUPS) + e;
        kernel(DeviceOps.MODULE, "route_top_k").launchGrid(tokens, 1, 1, 32, 1, 1, shared, logits, e, k,
                r.scoreThenTopK() ? 1 : 0, r.sigmoid() ? 1 : 0, r.normalize() ? 1 : 0, r.scaling(), r.selectionBias(),
                r.groups(), r.topGroups(), r.scoredPerGroup(), experts, weights);
        return true;
    }

    @Override
    public void addSigmoidGatedRows(Tensor dst, Tensor src, Tensor gateLogits) {
        own(dst, src, gateLogits);
        requireF32(gateLogits, "the gate's logits");
        int rows = dst.rows(), cols = dst.cols();
        require(src.rows() == rows && src.cols() == cols && gateLogits.size() == rows,
                "addSigmoidGatedRows: " + src + " gated by " + gateLogits + " into " + dst);
        k("add_sigmoid_gated_rows").launch(blocks((long) rows * cols), THREADS, dst, t(dst), src, t(src), gateLogits,
                rows, cols);
    }

    @Override
    public String toString() {
        return device.name();
    }
}
