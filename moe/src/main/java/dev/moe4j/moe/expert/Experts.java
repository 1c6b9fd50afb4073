package dev.moe4j.moe.expert;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * E expert FFNs run as one grouped matmul: the input rows arrive sorted by expert (rows offsets[e] ..
 * offsets[e+1] belong to expert e), and each expert multiplies its contiguous slice by its own weights. Experts
 * without rows are skipped, so decoding reads only the active experts' weights.
 *
 * <p>Work is spread where it pays: when the active experts have many rows each, experts run one after another and
 * every matmul splits its output columns over the worker pool; when there are many experts with few rows each
 * (fine-grained experts, decode), the experts themselves are spread over the pool.
 */
public final class Experts {
    /** Below this many rows per active expert, parallelise across experts rather than inside each matmul. */
    private static final int ROWS_FOR_INNER_PARALLELISM = 64;

    private final ExpertFfn ffn;
    private final ExpertWeights weights;

    public Experts(ExpertFfn ffn, ExpertWeights weights) {
        this.ffn = ffn;
        this.weights = weights;
        if (ffn.gated() && weights.gateUp(0) == null && weights.gate(0) == null) {
            throw new IllegalArgumentException("a gated FFN needs gate and up projections");
        }
    }

    public ExpertWeights weights() {
        return weights;
    }

    public ExpertFfn ffn() {
        return ffn;
    }

    /**
     * What backward needs: the input rows, the pre-activations (fused [N, 2I], or gate and up [N, I] each, or
     * [N, I] for a plain FFN), the activations [N, I] and the outputs [N, H].
     */
    public record Trace(Tensor input, int[] offsets, Tensor preActivation, Tensor gatePre, Tensor upPre,
                        Tensor activated, Tensor output) {
    }

    /** Runs every expert on its rows of input [N, H]; returns the output rows [N, H] and what backward needs. */
    public Trace forward(Tensor input, int[] offsets) {
        int n = input.rows(), h = weights.hidden(), inter = weights.intermediate();
        Backend b = Backend.of(input);
        boolean fused = ffn.gated() && weights.gateUp(firstActive(offsets)) != null;
        Tensor pre = null, gatePre = null, upPre = null;
        if (fused) {
            pre = b.activations(n, 2 * inter);
        } else if (ffn.gated()) {
            gatePre = b.activations(n, inter);
            upPre = b.activations(n, inter);
        } else {
            pre = b.activations(n, inter);
        }
        Tensor act = b.activations(n, inter), out = b.activations(n, h);
        Tensor p = pre, g = gatePre, u = upPre;
        forEachExpert(b, offsets, (e, from, to) -> {
            Tensor x = input.slice(from, to), a = act.slice(from, to);
            switch (ffn) {
                case ExpertFfn.Gated gated when p != null -> {
                    Tensor gu = p.slice(from, to);
                    linear(b, weights.transposed(), gu, x, weights.gateUp(e), weights.gateUpBias(e));
                    b.glu(a, gu, gated.glu());
                }
                case ExpertFfn.Gated gated -> {
                    Tensor gs = g.slice(from, to), us = u.slice(from, to);
                    linear(b, weights.transposed(), gs, x, weights.gate(e), weights.gateBias(e));
                    linear(b, weights.transposed(), us, x, weights.up(e), weights.upBias(e));
                    b.glu(a, gs, us, gated.glu());
                }
                case ExpertFfn.Plain plain -> {
                    Tensor hs = p.slice(from, to);
                    linear(b, weights.transposed(), hs, x, weights.up(e), weights.upBias(e));
                    b.activation(plain.activation(), a, hs);
                }
            }
            linear(b, weights.transposed(), out.slice(from, to), a, weights.down(e), weights.downBias(e));
        });
        return new Trace(input, offsets, pre, gatePre, upPre, act, out);
    }

    /**
     * dL/d input rows [N, H] from dL/d output rows; accumulates the gradients of the stacked weights. Only
     * {@link StackedExpertWeights} can be trained.
     */
    public Tensor backward(Trace trace, Tensor dOut) {
        if (!(weights instanceof StackedExpertWeights stacked)) {
            throw new IllegalStateException("experts held as checkpoint tensors (separate or transposed) are inference-only");
        }
        int n = trace.input().rows(), h = weights.hidden(), inter = weights.intermediate();
        Backend b = Backend.of(trace.input(), dOut);
        // Gradients in dOut's precision: F32 when training through a graph, on every device.
        Tensor dIn = b.zeros(dOut.dtype(), n, h);
        Tensor dAct = b.zeros(dOut.dtype(), n, inter);
        Tensor dPre = b.zeros(dOut.dtype(), n, trace.preActivation().cols());
        Tensor gGateUp = stacked.gateUpParameter().grad(), gDown = stacked.downParameter().grad();
        Tensor gGateUpBias = stacked.gateUpBiasParameter() == null ? null : stacked.gateUpBiasParameter().grad();
        Tensor gDownBias = stacked.downBiasParameter() == null ? null : stacked.downBiasParameter().grad();
        forEachExpert(b, trace.offsets(), (e, from, to) -> {
            Tensor dy = dOut.slice(from, to), da = dAct.slice(from, to), dp = dPre.slice(from, to);
            Tensor x = trace.input().slice(from, to), pre = trace.preActivation().slice(from, to);
            b.matmulBackwardInput(da, dy, weights.down(e), false);
            b.matmulBackwardWeight(gDown.select(e), dy, trace.activated().slice(from, to), true);
            if (gDownBias != null) {
                b.addColumnSums(gDownBias.select(e), dy);
            }
            switch (ffn) {
                case ExpertFfn.Gated gated -> b.gluBackward(dp, da, pre, gated.glu());
                // dp is this expert's rows of zeros: adding the derivative into them writes it.
                case ExpertFfn.Plain plain -> b.activationBackward(plain.activation(), dp, da, pre);
            }
            b.matmulBackwardWeight(gGateUp.select(e), dp, x, true);
            if (gGateUpBias != null) {
                b.addColumnSums(gGateUpBias.select(e), dp);
            }
            b.matmulBackwardInput(dIn.slice(from, to), dp, weights.gateUp(e) != null ? weights.gateUp(e) : weights.up(e),
                    false);
        });
        return dIn;
    }

    /** y = x · Wᵀ (+ b), or y = x · W when the weights are stored [in, out]. */
    private static void linear(Backend b, boolean transposed, Tensor y, Tensor x, Tensor w, Tensor bias) {
        if (transposed) {
            b.multiply(y, x, w);
        } else {
            b.matmul(y, x, w);
        }
        if (bias != null) {
            b.addRowVector(y, bias);
        }
    }

    /** Work on expert {@code expert}'s rows [from, to). */
    @FunctionalInterface
    public interface ExpertTask {
        void run(int expert, int from, int to);
    }

    /**
     * Runs the task for every expert with rows, in parallel across experts when they are many and small: the
     * grouped matmul's schedule (public so that benchmarks time bare matmuls under the same schedule).
     */
    public static void forEachExpert(int[] offsets, ExpertTask task) {
        forEachExpert(dev.moe4j.core.backend.CpuBackend.INSTANCE, offsets, task);
    }

    /**
     * As {@link #forEachExpert(int[], ExpertTask)} on backend {@code b}: a device backend orders its work on one
     * stream from one thread, so there the experts run one after another.
     */
    static void forEachExpert(Backend b, int[] offsets, ExpertTask task) {
        int experts = offsets.length - 1, active = 0;
        for (int e = 0; e < experts; e++) {
            active += offsets[e + 1] > offsets[e] ? 1 : 0;
        }
        if (active == 0) {
            return;
        }
        int[] list = new int[active];
        for (int e = 0, i = 0; e < experts; e++) {
            if (offsets[e + 1] > offsets[e]) {
                list[i++] = e;
            }
        }
        int rowsPerExpert = offsets[experts] / active;
        if (active > 1 && rowsPerExpert < ROWS_FOR_INNER_PARALLELISM && b.device().isHost()) {
            // Each thread takes the next expert left, the largest first: routed tokens spread unevenly, and a fixed
            // split of the experts into contiguous halves left one thread idle most of a prefill (measured: the
            // workers parked 66-78 % of its wall time). Every expert's rows are still computed by one thread in a
            // fixed order, so the results do not depend on which thread took it.
            Integer[] bySize = new Integer[active];
            for (int i = 0; i < active; i++) {
                bySize[i] = list[i];
            }
            Arrays.sort(bySize, (x, y) -> (offsets[y + 1] - offsets[y]) - (offsets[x + 1] - offsets[x]));
            var next = new AtomicInteger();
            int count = active;
            Parallel.forEach(Math.min(count, Parallel.threads()), (from, to) -> {
                for (int i = next.getAndIncrement(); i < count; i = next.getAndIncrement()) {
                    int e = bySize[i];
                    task.run(e, offsets[e], offsets[e + 1]);
                }
            });
        } else {
            for (int e : list) {
                task.run(e, offsets[e], offsets[e + 1]);
            }
        }
    }

    private static int firstActive(int[] offsets) {
        for (int e = 0; e + 1 < offsets.length; e++) {
            if (offsets[e + 1] > offsets[e]) {
                return e;
            }
        }
        return 0;
    }
}
