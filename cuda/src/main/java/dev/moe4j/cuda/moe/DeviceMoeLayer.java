package dev.moe4j.cuda.moe;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.cuda.Blas;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceOps;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.Kernel;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.router.TopKRouter;

import java.util.ArrayList;
import java.util.List;

/**
 * The MoE layer on a GPU, forward and backward, with BF16 weights and activations and F32 arithmetic:
 * router logits (cuBLAS, F32 out) → scores and top-k gate weights → a stable permutation of the (token, choice)
 * pairs into expert order → gather → grouped gate/up product → SwiGLU → grouped down product → combine (each token
 * sums its k rows times their weights). Backward runs the same steps in reverse and accumulates F32 gradients of the
 * router and of the stacked expert weights.
 *
 * <p>It computes what {@link MoeLayer} computes for token-choice top-k routing without capacity (dropless): softmax
 * or sigmoid scores, score-then-top-k, renormalised or not, a routed scaling factor, a selection-only bias, SwiGLU
 * experts stored stacked ([E, 2I, H] gate rows then up rows, [E, H, I]). The routing is made on the device, so
 * the only host round trip per pass is the E + 1 row offsets the grouped products need.
 */
public final class DeviceMoeLayer implements AutoCloseable {
    private static final String MODULE = "kernels";
    /**
     * Up to this many tokens, inference skips the permutation: a kernel per projection reads each chosen expert's
     * rows once per token (memory-bound, as decoding is) and the host never waits for row counts.
     */
    static final int SMALL_BATCH_TOKENS = 4;

    private final CudaDevice device;
    private final MoeConfig config;
    private final DeviceTensor router;
    private final DeviceTensor gateUp;
    private final DeviceTensor down;
    private final DeviceTensor selectionBias;
    private DeviceTensor routerGrad;
    private DeviceTensor gateUpGrad;
    private DeviceTensor downGrad;

    private DeviceMoeLayer(CudaDevice device, MoeConfig config, DeviceTensor router, DeviceTensor gateUp,
                           DeviceTensor down, DeviceTensor selectionBias) {
        this.device = device;
        this.config = config;
        this.router = router;
        this.gateUp = gateUp;
        this.down = down;
        this.selectionBias = selectionBias;
    }

    /** The options of {@link MoeConfig} this layer does not implement; empty when it runs the config. */
    public static List<String> unsupported(MoeConfig c) {
        var out = new ArrayList<String>();
        if (c.router() != RouterKind.TOP_K) {
            out.add("router " + c.router());
        }
        if (c.experts() > 1024 || c.topK() > 32) {
            out.add("more than 1024 experts or top-k above 32");
        }
        if (c.gateOrder() != GateOrder.SOFTMAX_THEN_TOP_K) {
            out.add("gate order " + c.gateOrder());
        }
        if (c.routerBias()) {
            out.add("router bias");
        }
        if (c.groupLimit().isLimited()) {
            out.add("group-limited routing");
        }
        if (c.noise().kind() != Noise.Kind.NONE) {
            out.add("router noise");
        }
        if (!c.capacity().isDropless()) {
            out.add("capacity");
        }
        if (!(c.ffn() instanceof ExpertFfn.Gated g && g.glu() instanceof GluParams.Gated gg
                && gg.activation() == dev.moe4j.core.kernels.Activation.SILU && gg.layout() == GluParams.Layout.HALVES)) {
            out.add("expert FFN " + c.ffn() + " (only SwiGLU)");
        }
        if (c.expertBias()) {
            out.add("expert biases");
        }
        if (c.sharedIntermediate() > 0) {
            out.add("shared expert");
        }
        if (!c.losses().isEmpty()) {
            out.add("balance losses");
        }
        return out;
    }

    private static void requireSupported(MoeConfig c) {
        List<String> missing = unsupported(c);
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("the GPU MoE layer does not implement " + String.join(", ", missing));
        }
    }

    /** The layer with a CPU layer's weights (rounded to BF16), for the same function on the GPU. */
    public static DeviceMoeLayer upload(CudaDevice device, MoeLayer layer) {
        MoeConfig c = layer.config();
        requireSupported(c);
        Tensor routerWeight = parameter(layer, "router.weight"), gu = parameter(layer, "experts.gate_up_proj");
        Tensor dn = parameter(layer, "experts.down_proj");
        DeviceTensor bias = null;
        if (c.selectionBias()) {
            bias = device.upload(((TopKRouter) layer.router()).selectionBias(), DType.F32);
        }
        return new DeviceMoeLayer(device, c, device.upload(routerWeight, DType.BF16), device.upload(gu, DType.BF16),
                device.upload(dn, DType.BF16), bias);
    }

    private static Tensor parameter(MoeLayer layer, String name) {
        for (Parameter p : layer.parameters()) {
            if (p.name().equals(name)) {
                return p.value();
            }
        }
        throw new IllegalArgumentException("the MoE layer has no parameter " + name + " (stacked experts are needed)");
    }

    /**
     * A layer with random weights made on the device (router and gate/up N(0, 1/H), down N(0, 1/I), as
     * {@link MoeLayer#initialize} draws them), for benchmarks at sizes the host need not hold.
     */
    public static DeviceMoeLayer random(CudaDevice device, MoeConfig c, long seed) {
        requireSupported(c);
        int e = c.experts(), h = c.hidden(), i = c.intermediate();
        DeviceTensor r = device.allocate(DType.BF16, e, h), gu = device.allocate(DType.BF16, e, 2 * i, h);
        DeviceTensor dn = device.allocate(DType.BF16, e, h, i);
        DeviceOps.fillNormal(r, seed, 1 / Math.sqrt(h));
        DeviceOps.fillNormal(gu, seed + 1, 1 / Math.sqrt(h));
        DeviceOps.fillNormal(dn, seed + 2, 1 / Math.sqrt(i));
        DeviceTensor bias = c.selectionBias() ? device.zeros(DType.F32, e) : null;
        return new DeviceMoeLayer(device, c, r, gu, dn, bias);
    }

    public MoeConfig config() {
        return config;
    }

    /** [E, H] BF16 router weight. */
    public DeviceTensor router() {
        return router;
    }

    /** [E, 2I, H] BF16 gate rows then up rows per expert. */
    public DeviceTensor gateUp() {
        return gateUp;
    }

    /** [E, H, I] BF16. */
    public DeviceTensor down() {
        return down;
    }

    /** F32 gradients, accumulated by {@link #backward}; null before the first backward. */
    public DeviceTensor routerGrad() {
        return routerGrad;
    }

    public DeviceTensor gateUpGrad() {
        return gateUpGrad;
    }

    public DeviceTensor downGrad() {
        return downGrad;
    }

    /** Sets the accumulated gradients to zero. */
    public void zeroGrad() {
        for (DeviceTensor g : new DeviceTensor[] {routerGrad, gateUpGrad, downGrad}) {
            if (g != null) {
                g.fillZero();
            }
        }
    }

    /**
     * One forward pass: what it produced (output, each token's experts and gate weights) and, for a training pass,
     * what backward needs. Closing it frees everything it allocated but the output, which the caller owns.
     */
    public static final class Pass implements AutoCloseable {
        private final DeviceTensor input;
        private final DeviceTensor output;
        private final int[] offsets;
        private final List<DeviceTensor> saved;
        private final DeviceTensor scores, choice, weight, rowOf, xp, gu, act, y;
        private final boolean training;

        private Pass(DeviceTensor input, DeviceTensor output, int[] offsets, DeviceTensor scores, DeviceTensor choice,
                     DeviceTensor weight, DeviceTensor rowOf, DeviceTensor xp, DeviceTensor gu, DeviceTensor act,
                     DeviceTensor y, List<DeviceTensor> saved, boolean training) {
            this.training = training;
            this.input = input;
            this.output = output;
            this.offsets = offsets;
            this.scores = scores;
            this.choice = choice;
            this.weight = weight;
            this.rowOf = rowOf;
            this.xp = xp;
            this.gu = gu;
            this.act = act;
            this.y = y;
            this.saved = saved;
        }

        /** [T, H] BF16 layer output. */
        public DeviceTensor output() {
            return output;
        }

        /**
         * Row offsets of the experts in the permuted order ([E + 1]): expert e took offsets[e+1] − offsets[e] rows;
         * null when a small inference batch ran without a permutation.
         */
        public int[] offsets() {
            return offsets == null ? null : offsets.clone();
        }

        /** [T, k] chosen experts, best first. */
        public DeviceTensor choice() {
            return choice;
        }

        /** [T, k] F32 gate weights. */
        public DeviceTensor weight() {
            return weight;
        }

        @Override
        public void close() {
            for (DeviceTensor t : saved) {
                t.close();
            }
            saved.clear();
        }
    }

    /**
     * The layer over x [T, H] (BF16). With {@code training} the pass keeps what {@link #backward} needs; otherwise
     * the intermediates are freed at once, and up to {@link #SMALL_BATCH_TOKENS} tokens take the decoding path.
     */
    public Pass forward(DeviceTensor x, boolean training) {
        int t = x.rows(), h = config.hidden(), inter = config.intermediate(), e = config.experts(), k = config.topK();
        if (x.dtype() != DType.BF16 || x.cols() != h) {
            throw new IllegalArgumentException("MoE input must be BF16 [tokens, " + h + "], got " + x);
        }
        int n = t * k;
        Blas blas = device.blas();
        var saved = new ArrayList<DeviceTensor>();
        // The routing's small tensors (and, for a small inference batch, the activations) share one allocation.
        boolean small = !training && t <= SMALL_BATCH_TOKENS;
        long logitsAt = 0, scoresAt = aligned(logitsAt + 4L * t * e), choiceAt = aligned(scoresAt + 4L * t * e);
        long weightAt = aligned(choiceAt + 4L * n), actAt = aligned(weightAt + 4L * n);
        long bytes = small ? actAt + 4L * n * inter : actAt;
        DeviceTensor workspace = keep(saved, device.allocate(DType.U8, Math.toIntExact((bytes + 255) >> 8), 256));
        DeviceTensor logits = workspace.carve(logitsAt, DType.F32, t, e);
        DeviceTensor scores = workspace.carve(scoresAt, DType.F32, t, e);
        DeviceTensor choice = workspace.carve(choiceAt, DType.I32, t, k);
        DeviceTensor weight = workspace.carve(weightAt, DType.F32, t, k);
        blas.linear(logits, x, router, 0f);
        kernel("route_top_k").launch(ceil(t, 4), 128, logits, selectionBias, t, e, k, sigmoid(), normalize(), scale(),
                scores, choice, weight);
        if (small) {
            DeviceTensor act = workspace.carve(actAt, DType.F32, n, inter), out = device.allocate(DType.BF16, t, h);
            kernel("moe_decode_gate_up").launchGrid(ceil(inter, 8), n, 1, 256, 1, 1, 0, x, choice, gateUp, k, h, inter, act);
            kernel("moe_decode_down").launchGrid(ceil(h, 8), t, 1, 256, 1, 1, 0, act, choice, weight, down, k, h, inter, out);
            return new Pass(x, out, null, scores, choice, weight, null, null, null, null, null, saved, false);
        }
        DeviceTensor offsetsDevice = device.allocate(DType.I32, e + 1);
        DeviceTensor rowOf = keep(saved, device.allocate(DType.I32, n));
        DeviceTensor tokenOf = device.allocate(DType.I32, n);
        kernel("expert_rows").launch(e, 1024, choice, n, k, e, offsetsDevice, rowOf, tokenOf);
        int[] offsets = toInts(offsetsDevice.toHost());
        offsetsDevice.close();

        DeviceTensor xp = keep(saved, device.allocate(DType.BF16, n, h));
        kernel("gather_rows").launch(n, rowThreads(h), x, tokenOf, n, h, xp);
        tokenOf.close();
        DeviceTensor gu = keep(saved, device.allocate(DType.BF16, n, 2 * inter));
        blas.groupedLinear(gu, xp, gateUp, offsets, 0f);
        DeviceTensor act = keep(saved, device.allocate(DType.BF16, n, inter));
        kernel("swiglu_forward").launch(DeviceOps.blocks(device, (long) n * inter / 8 + 1, 256), 256, gu, n, inter, act);
        DeviceTensor y = keep(saved, device.allocate(DType.BF16, n, h));
        blas.groupedLinear(y, act, down, offsets, 0f);
        DeviceTensor out = device.allocate(DType.BF16, t, h);
        kernel("combine").launch(t, rowThreads(h), y, rowOf, weight, t, k, h, out);
        if (!training) {
            for (DeviceTensor intermediate : List.of(rowOf, xp, gu, act, y)) {
                saved.remove(intermediate);
                intermediate.close();
            }
        }
        return new Pass(x, out, offsets, scores, choice, weight, rowOf, xp, gu, act, y, saved, training);
    }

    /**
     * dL/dx [T, H] (BF16) from dL/d output; adds the router's and the experts' gradients (F32) into
     * {@link #routerGrad()}, {@link #gateUpGrad()}, {@link #downGrad()}.
     */
    public DeviceTensor backward(Pass p, DeviceTensor dOut) {
        if (!p.training || p.saved.isEmpty()) {
            throw new IllegalStateException("backward needs a training forward pass that is still open");
        }
        int t = p.input.rows(), h = config.hidden(), inter = config.intermediate(), e = config.experts();
        int k = config.topK(), n = t * k;
        if (dOut.dtype() != DType.BF16 || !dOut.hasShape(t, h)) {
            throw new IllegalArgumentException("dOut must be BF16 [" + t + ", " + h + "], got " + dOut);
        }
        ensureGradients();
        Blas blas = device.blas();
        DeviceTensor dy = device.allocate(DType.BF16, n, h), dWeight = device.allocate(DType.F32, t, k);
        kernel("combine_backward").launch(t, rowThreads(h), dOut, p.y, p.rowOf, p.weight, t, k, h, dy, dWeight);
        DeviceTensor da = device.allocate(DType.BF16, n, inter);
        blas.groupedLinearBackwardInput(da, dy, down, p.offsets, 0f);
        blas.groupedLinearBackwardWeight(downGrad, dy, p.act, p.offsets, 1f);
        dy.close();
        DeviceTensor dgu = device.allocate(DType.BF16, n, 2 * inter);
        kernel("swiglu_backward").launch(DeviceOps.blocks(device, (long) n * inter / 8 + 1, 256), 256, p.gu, da, n, inter, dgu);
        da.close();
        blas.groupedLinearBackwardWeight(gateUpGrad, dgu, p.xp, p.offsets, 1f);
        DeviceTensor dxp = device.allocate(DType.BF16, n, h);
        blas.groupedLinearBackwardInput(dxp, dgu, gateUp, p.offsets, 0f);
        dgu.close();

        DeviceTensor dLogits = device.allocate(DType.F32, t, e), dLogitsBf16 = device.allocate(DType.BF16, t, e);
        kernel("route_top_k_backward").launch(ceil(t, 128), 128, p.scores, p.choice, dWeight, t, e, k, sigmoid(),
                normalize(), scale(), dLogits, dLogitsBf16);
        dWeight.close();
        dLogits.close();
        DeviceTensor dxRouter = device.allocate(DType.F32, t, h);
        blas.linearBackwardInput(dxRouter, dLogitsBf16, router, 0f);
        blas.linearBackwardWeight(routerGrad, dLogitsBf16, p.input, 1f);
        dLogitsBf16.close();
        DeviceTensor dx = device.allocate(DType.BF16, t, h);
        kernel("scatter_back").launch(t, rowThreads(h), dxp, p.rowOf, dxRouter, t, k, h, dx);
        dxp.close();
        dxRouter.close();
        return dx;
    }

    private void ensureGradients() {
        if (routerGrad == null) {
            routerGrad = device.zeros(DType.F32, router.shape());
            gateUpGrad = device.zeros(DType.F32, gateUp.shape());
            downGrad = device.zeros(DType.F32, down.shape());
        }
    }

    private Kernel kernel(String name) {
        return device.kernel(MODULE, name);
    }

    private int sigmoid() {
        return config.scoring() == Scoring.SIGMOID ? 1 : 0;
    }

    private int normalize() {
        return config.normalizeTopK() ? 1 : 0;
    }

    private float scale() {
        return (float) config.routedScalingFactor();
    }

    /** Threads for a kernel with a block per row of h BF16 values read 8 at a time. */
    private static int rowThreads(int h) {
        int vectors = (h + 7) / 8;
        return Math.max(32, Math.min(256, (vectors + 31) / 32 * 32));
    }

    /** The next multiple of 256 bytes: each carved tensor starts where a 16-byte access can. */
    private static long aligned(long bytes) {
        return (bytes + 255) & ~255L;
    }

    private static int ceil(int n, int d) {
        return (n + d - 1) / d;
    }

    private static DeviceTensor keep(List<DeviceTensor> saved, DeviceTensor t) {
        saved.add(t);
        return t;
    }

    private static int[] toInts(Tensor t) {
        int[] out = new int[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) t.getLong(i);
        }
        return out;
    }

    @Override
    public void close() {
        for (DeviceTensor t : new DeviceTensor[] {router, gateUp, down, selectionBias, routerGrad, gateUpGrad, downGrad}) {
            if (t != null) {
                t.close();
            }
        }
    }
}
