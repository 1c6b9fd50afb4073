package dev.moe4j.moe.expert;

import dev.moe4j.core.DType;
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
    private final ExpertAdapters adapters;

    public Experts(ExpertFfn ffn, ExpertWeights weights) {
        this(ffn, weights, null);
    }

    /** Experts whose projections carry LoRA {@code adapters} (null: none). */
    public Experts(ExpertFfn ffn, ExpertWeights weights, ExpertAdapters adapters) {
        this.ffn = ffn;
        this.weights = weights;
        this.adapters = adapters == null || adapters.isEmpty() ? null : adapters;
        if (ffn.gated() && weights.gateUp(0) == null && weights.gate(0) == null) {
            throw new IllegalArgumentException("a gated FFN needs gate and up projections");
        }
        if (this.adapters != null) {
            this.adapters.check(ffn, weights);
        }
    }

    public ExpertWeights weights() {
        return weights;
    }

    public ExpertFfn ffn() {
        return ffn;
    }

    /** The LoRA adapters, or null. */
    public ExpertAdapters adapters() {
        return adapters;
    }

    /**
     * What backward needs: the input rows, the pre-activations (fused [N, 2I], or gate and up [N, I] each, or
     * [N, I] for a plain FFN), the activations [N, I] and the outputs [N, H]; with adapters, each adapter's
     * scale · x · aᵀ rows ({@code lowRank}).
     */
    public record Trace(Tensor input, int[] offsets, Tensor preActivation, Tensor gatePre, Tensor upPre,
                        Tensor activated, Tensor output, LowRank lowRank) {
    }

    /** scale · x · a_eᵀ [N, r] of each adapter, rows in expert order; null where there is no adapter. */
    public record LowRank(Tensor gateUp, Tensor gate, Tensor up, Tensor down) {
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
        LowRank lr = adapters == null ? null : new LowRank(rankRows(b, adapters.gateUp(), n),
                rankRows(b, adapters.gate(), n), rankRows(b, adapters.up(), n), rankRows(b, adapters.down(), n));
        Tensor p = pre, g = gatePre, u = upPre;
        forEachExpert(b, offsets, (e, from, to) -> {
            Tensor x = input.slice(from, to), a = act.slice(from, to);
            switch (ffn) {
                case ExpertFfn.Gated gated when p != null -> {
                    Tensor gu = p.slice(from, to);
                    linear(b, weights.transposed(), gu, x, weights.gateUp(e), weights.gateUpBias(e));
                    if (lr != null) {
                        addInputAdapters(b, e, from, to, x, lr, gu, null, null);
                    }
                    b.glu(a, gu, gated.glu());
                }
                case ExpertFfn.Gated gated -> {
                    Tensor gs = g.slice(from, to), us = u.slice(from, to);
                    linear(b, weights.transposed(), gs, x, weights.gate(e), weights.gateBias(e));
                    linear(b, weights.transposed(), us, x, weights.up(e), weights.upBias(e));
                    if (lr != null) {
                        addInputAdapters(b, e, from, to, x, lr, null, gs, us);
                    }
                    b.glu(a, gs, us, gated.glu());
                }
                case ExpertFfn.Plain plain -> {
                    Tensor hs = p.slice(from, to);
                    linear(b, weights.transposed(), hs, x, weights.up(e), weights.upBias(e));
                    if (lr != null) {
                        addInputAdapters(b, e, from, to, x, lr, hs, null, null);
                    }
                    b.activation(plain.activation(), a, hs);
                }
            }
            Tensor o = out.slice(from, to);
            linear(b, weights.transposed(), o, a, weights.down(e), weights.downBias(e));
            if (lr != null && adapters.down() != null) {
                add(b, o, 0, lowRank(b, adapters.down(), e, a, lr.down().slice(from, to)));
            }
        });
        return new Trace(input, offsets, pre, gatePre, upPre, act, out, lr);
    }

    private static Tensor rankRows(Backend b, ExpertLora l, int rows) {
        return l == null ? null : b.zeros(DType.F32, rows, l.rank());
    }

    /**
     * Adds the input-side adapters of expert e to its pre-activations: {@code fused} [rows, 2I] (or a plain FFN's
     * [rows, I]), or {@code gate} and {@code up} [rows, I] each.
     */
    private void addInputAdapters(Backend b, int e, int from, int to, Tensor x, LowRank lr, Tensor fused,
                                  Tensor gate, Tensor up) {
        int inter = weights.intermediate();
        if (adapters.gateUp() != null) {
            Tensor d = lowRank(b, adapters.gateUp(), e, x, lr.gateUp().slice(from, to));
            if (fused != null) {
                add(b, fused, 0, d);
            } else {
                add(b, gate, 0, d.cols() == inter ? d : columns(b, d, 0, inter));
                add(b, up, 0, columns(b, d, inter, inter));
            }
        }
        if (adapters.gate() != null) {
            add(b, fused != null ? fused : gate, 0, lowRank(b, adapters.gate(), e, x, lr.gate().slice(from, to)));
        }
        if (adapters.up() != null) {
            add(b, fused != null ? fused : up, fused != null ? inter : 0,
                    lowRank(b, adapters.up(), e, x, lr.up().slice(from, to)));
        }
    }

    /** t = scale · x · a_eᵀ (kept for backward) and returns t · b_eᵀ [rows, out]. */
    private static Tensor lowRank(Backend b, ExpertLora l, int e, Tensor x, Tensor t) {
        b.matmul(t, x, l.a(e));
        b.scale(t, l.scale());
        Tensor d = b.zeros(DType.F32, x.rows(), l.out());
        b.matmul(d, t, l.b(e));
        return d;
    }

    /** y[:, at .. at + d.cols) += d. */
    private static void add(Backend b, Tensor y, int at, Tensor d) {
        if (at == 0 && d.cols() == y.cols()) {
            b.addInPlace(y, d);
        } else {
            b.copyColumns(y, at, d, 0, d.cols(), true);
        }
    }

    /** Columns [from, from + width) of x as a new tensor. */
    private static Tensor columns(Backend b, Tensor x, int from, int width) {
        Tensor out = b.zeros(x.dtype(), x.rows(), width);
        b.copyColumns(out, 0, x, from, width, false);
        return out;
    }

    /**
     * dL/d input rows [N, H] from dL/d output rows. Accumulates the gradients of stacked weights that take one, and of
     * the adapters; experts held as checkpoint tensors (separate or transposed) are frozen: only dL/d input flows
     * through them.
     */
    public Tensor backward(Trace trace, Tensor dOut) {
        StackedExpertWeights stacked = weights instanceof StackedExpertWeights s && s.gateUpParameter().requiresGrad()
                ? s : null;
        int n = trace.input().rows(), h = weights.hidden(), inter = weights.intermediate();
        Backend b = Backend.of(trace.input(), dOut);
        boolean transposed = weights.transposed();
        boolean fused = trace.preActivation() != null;
        // Gradients in dOut's precision: F32 when training through a graph, on every device.
        Tensor dIn = b.zeros(dOut.dtype(), n, h);
        Tensor dAct = b.zeros(dOut.dtype(), n, inter);
        Tensor dPre = fused ? b.zeros(dOut.dtype(), n, trace.preActivation().cols()) : null;
        Tensor dGate = fused ? null : b.zeros(dOut.dtype(), n, inter), dUp = fused ? null : b.zeros(dOut.dtype(), n, inter);
        Tensor gGateUp = stacked == null ? null : stacked.gateUpParameter().grad();
        Tensor gDown = stacked == null ? null : stacked.downParameter().grad();
        Tensor gGateUpBias = stacked == null || stacked.gateUpBiasParameter() == null ? null
                : stacked.gateUpBiasParameter().grad();
        Tensor gDownBias = stacked == null || stacked.downBiasParameter() == null ? null
                : stacked.downBiasParameter().grad();
        AdapterGrads ag = adapters == null ? null : new AdapterGrads(adapters);
        LowRank lr = trace.lowRank();
        forEachExpert(b, trace.offsets(), (e, from, to) -> {
            Tensor dy = dOut.slice(from, to), da = dAct.slice(from, to), act = trace.activated().slice(from, to);
            Tensor x = trace.input().slice(from, to);
            backwardInput(b, transposed, da, dy, weights.down(e));
            if (gDown != null) {
                b.matmulBackwardWeight(gDown.select(e), dy, act, true);
            }
            if (gDownBias != null) {
                b.addColumnSums(gDownBias.select(e), dy);
            }
            if (ag != null && adapters.down() != null) {
                ag.backward(b, adapters.down(), ag.down, e, da, dy, act, lr.down().slice(from, to));
            }
            Tensor dxs = dIn.slice(from, to);
            if (fused) {
                Tensor dp = dPre.slice(from, to), pre = trace.preActivation().slice(from, to);
                switch (ffn) {
                    case ExpertFfn.Gated gated -> b.gluBackward(dp, da, pre, gated.glu());
                    // dp is this expert's rows of zeros: adding the derivative into them writes it.
                    case ExpertFfn.Plain plain -> b.activationBackward(plain.activation(), dp, da, pre);
                }
                if (gGateUp != null) {
                    b.matmulBackwardWeight(gGateUp.select(e), dp, x, true);
                }
                if (gGateUpBias != null) {
                    b.addColumnSums(gGateUpBias.select(e), dp);
                }
                backwardInput(b, transposed, dxs, dp, weights.gateUp(e) != null ? weights.gateUp(e) : weights.up(e));
                if (ag != null) {
                    if (adapters.gateUp() != null) {
                        ag.backward(b, adapters.gateUp(), ag.gateUp, e, dxs, dp, x, lr.gateUp().slice(from, to));
                    }
                    if (adapters.gate() != null) {
                        ag.backward(b, adapters.gate(), ag.gate, e, dxs, columns(b, dp, 0, inter), x,
                                lr.gate().slice(from, to));
                    }
                    if (adapters.up() != null) {
                        ag.backward(b, adapters.up(), ag.up, e, dxs, columns(b, dp, inter, inter), x,
                                lr.up().slice(from, to));
                    }
                }
            } else {
                Tensor dg = dGate.slice(from, to), du = dUp.slice(from, to);
                var gated = (ExpertFfn.Gated) ffn;
                b.gluBackward(dg, du, da, trace.gatePre().slice(from, to), trace.upPre().slice(from, to), gated.glu());
                backwardInput(b, transposed, dxs, dg, weights.gate(e));
                Tensor fromUp = b.zeros(dxs.dtype(), dxs.rows(), dxs.cols());
                backwardInput(b, transposed, fromUp, du, weights.up(e));
                b.addInPlace(dxs, fromUp);
                if (ag != null) {
                    if (adapters.gateUp() != null) {
                        Tensor both = b.zeros(DType.F32, dg.rows(), 2 * inter);
                        b.copyColumns(both, 0, dg, 0, inter, false);
                        b.copyColumns(both, inter, du, 0, inter, false);
                        ag.backward(b, adapters.gateUp(), ag.gateUp, e, dxs, both, x, lr.gateUp().slice(from, to));
                    }
                    if (adapters.gate() != null) {
                        ag.backward(b, adapters.gate(), ag.gate, e, dxs, dg, x, lr.gate().slice(from, to));
                    }
                    if (adapters.up() != null) {
                        ag.backward(b, adapters.up(), ag.up, e, dxs, du, x, lr.up().slice(from, to));
                    }
                }
            }
        });
        return dIn;
    }

    /** dx = dy · W for a weight stored [out, in], or dy · Wᵀ for one stored [in, out] (written, not added). */
    private static void backwardInput(Backend b, boolean transposed, Tensor dx, Tensor dy, Tensor w) {
        if (transposed) {
            b.matmul(dx, dy, w);
        } else {
            b.matmulBackwardInput(dx, dy, w, false);
        }
    }

    /** The adapters' gradients, fetched once before the experts run in parallel (each allocates on first use). */
    private static final class AdapterGrads {
        final Tensor[] gateUp, gate, up, down;

        AdapterGrads(ExpertAdapters a) {
            gateUp = grads(a.gateUp());
            gate = grads(a.gate());
            up = grads(a.up());
            down = grads(a.down());
        }

        private static Tensor[] grads(ExpertLora l) {
            if (l == null) {
                return null;
            }
            return new Tensor[] {l.a().requiresGrad() ? l.a().grad() : null, l.b().requiresGrad() ? l.b().grad() : null};
        }

        /** Expert e's adapter gradients from dy at its output; adds its dL/dx into dx. */
        void backward(Backend b, ExpertLora l, Tensor[] g, int e, Tensor dx, Tensor dy, Tensor x, Tensor t) {
            b.lowRankBackward(dx, g[0] == null ? null : g[0].select(e), g[1] == null ? null : g[1].select(e), dy, x, t,
                    l.a(e), l.b(e), l.scale());
        }
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
