package dev.moe4j.cli.bench;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Times the MoE layer's forward and backward per routing strategy against the matmuls its experts do (the same
 * per-expert row counts, multiplied alone) and against one dense FFN of the same FLOPs: the difference is what
 * routing, permutation, activation and combine cost.
 */
final class MoeBenchmark {
    /** The layer's shape. */
    record Shape(int tokens, int hidden, int intermediate, int experts, int topK) {
    }

    /** Seconds per forward + backward, median over the timed iterations. */
    record Result(String strategy, double layerSeconds, double expertMatmulSeconds, double expertFlops,
                  double droppedFraction) {
        double ratio() {
            return layerSeconds / expertMatmulSeconds;
        }
    }

    private MoeBenchmark() {
    }

    /** The strategies, each at the shape's k where it has one; FLOPs match top-k's except Switch's (k = 1). */
    static Map<String, MoeConfig> strategies(Shape s) {
        int h = s.hidden(), i = s.intermediate(), e = s.experts(), k = s.topK();
        var out = new LinkedHashMap<String, MoeConfig>();
        out.put("top-k (Mixtral: softmax, renormalised, dropless)",
                MoeConfig.builder(h, i, e, k).normalizeTopK(true)
                        .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.02).build());
        out.put("switch (top-1, jitter, capacity 1.25, switch + z losses)",
                MoeConfig.builder(h, i, e, 1).noise(Noise.jitter(0.01)).capacity(Capacity.switchFactor(1.25))
                        .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.01).loss(new RouterZLoss(), 0.001).build());
        out.put("top-k, capacity 1.25, batch priority, re-route",
                MoeConfig.builder(h, i, e, k).capacity(Capacity.vmoeFactor(1.25)).priority(Priority.SCORE)
                        .overflow(Overflow.NEXT_CHOICE).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.01).build());
        if (e % 4 == 0) {
            out.put("deepseek-v3 (sigmoid, groups, selection bias, sequence loss)",
                    MoeConfig.builder(h, i, e, k).scoring(Scoring.SIGMOID).normalizeTopK(true).selectionBias(true)
                            .groupLimit(GroupLimit.deepSeekV3(4, 2)).routedScalingFactor(2.5)
                            .loss(new SequenceLoss(), 0.0001).build());
        }
        out.put("noisy top-k (learned noise, importance + load)",
                MoeConfig.builder(h, i, e, k).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).noise(Noise.learnedGaussian())
                        .loss(new ImportanceLoss(), 0.01).loss(new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.01)
                        .build());
        out.put("expert choice (capacity factor k)",
                MoeConfig.builder(h, i, e, 1).router(RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.factor(k, Capacity.Rounding.CEIL, 1)).build());
        out.put("soft moe (tokens·k/experts slots per expert)",
                MoeConfig.builder(h, i, e, 1).router(RouterKind.SOFT)
                        .slotsPerExpert(Math.max(1, s.tokens() * k / e)).build());
        return out;
    }

    static Result run(String name, MoeConfig config, Shape s, int warmup, int iterations) {
        MoeLayer layer = MoeLayer.initialize(config);
        var random = new Random(17);
        Tensor x = gaussian(random, s.tokens(), s.hidden()), dOut = gaussian(random, s.tokens(), s.hidden());
        double[] times = new double[iterations];
        int[] offsets = null;
        double dropped = 0;
        for (int it = -warmup; it < iterations; it++) {
            for (Parameter p : layer.parameters()) {
                p.zeroGrad();
            }
            long t0 = System.nanoTime();
            MoeResult r = layer.forward(x, s.tokens(), Mode.TRAINING);
            layer.backward(r.context(), dOut);
            long t1 = System.nanoTime();
            if (it >= 0) {
                times[it] = (t1 - t0) / 1e9;
            }
            var routing = r.context().routing();
            offsets = routing.dispatch() != null ? routing.dispatch().offsets() : slotOffsets(config);
            dropped = r.stats().droppedFraction();
        }
        double matmuls = expertMatmuls(s, config.intermediate(), offsets, warmup, iterations);
        return new Result(name, median(times), matmuls, expertFlops(s, offsets), dropped);
    }

    private static int[] slotOffsets(MoeConfig c) {
        int[] offsets = new int[c.experts() + 1];
        for (int e = 0; e <= c.experts(); e++) {
            offsets[e] = e * c.slotsPerExpert();
        }
        return offsets;
    }

    /** 2 · rows · H · 3I per direction; backward does twice the forward's work. */
    static double expertFlops(Shape s, int[] offsets) {
        double rows = offsets[offsets.length - 1];
        return 3 * 2 * rows * s.hidden() * 3.0 * s.intermediate();
    }

    /**
     * The six matmuls per expert of a SwiGLU expert's forward (gate/up, down) and backward (two input gradients,
     * two weight gradients) on the same row counts, alone: what the layer cannot go below.
     */
    static double expertMatmuls(Shape s, int inter, int[] offsets, int warmup, int iterations) {
        int h = s.hidden(), e = offsets.length - 1, n = offsets[e];
        var random = new Random(5);
        Tensor x = gaussian(random, n, h), gu = Tensor.zeros(n, 2 * inter), a = gaussian(random, n, inter);
        Tensor y = Tensor.zeros(n, h), dy = gaussian(random, n, h), da = Tensor.zeros(n, inter);
        Tensor dgu = gaussian(random, n, 2 * inter), dx = Tensor.zeros(n, h);
        Tensor wGu = gaussian(random, e, 2 * inter, h), wDown = gaussian(random, e, h, inter);
        Tensor gGu = Tensor.zeros(e, 2 * inter, h), gDown = Tensor.zeros(e, h, inter);
        double[] times = new double[iterations];
        for (int it = -warmup; it < iterations; it++) {
            long t0 = System.nanoTime();
            for (int ex = 0; ex < e; ex++) {
                int from = offsets[ex], to = offsets[ex + 1];
                if (to == from) {
                    continue;
                }
                MatMul.forward(gu.slice(from, to), x.slice(from, to), wGu.select(ex));
                MatMul.forward(y.slice(from, to), a.slice(from, to), wDown.select(ex));
                MatMul.backwardInput(da.slice(from, to), dy.slice(from, to), wDown.select(ex), false);
                MatMul.backwardWeight(gDown.select(ex), dy.slice(from, to), a.slice(from, to), true);
                MatMul.backwardWeight(gGu.select(ex), dgu.slice(from, to), x.slice(from, to), true);
                MatMul.backwardInput(dx.slice(from, to), dgu.slice(from, to), wGu.select(ex), false);
            }
            long t1 = System.nanoTime();
            if (it >= 0) {
                times[it] = (t1 - t0) / 1e9;
            }
        }
        return median(times);
    }

    /** One dense SwiGLU FFN of intermediate k·I over all tokens: the expert FLOPs of top-k as one matmul chain. */
    static double denseChain(Shape s, int warmup, int iterations) {
        int[] offsets = {0, s.tokens()};
        return expertMatmuls(s, s.intermediate() * s.topK(), offsets, warmup, iterations);
    }

    static double median(double[] v) {
        double[] c = v.clone();
        Arrays.sort(c);
        return c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2;
    }

    private static Tensor gaussian(Random random, int... shape) {
        Tensor t = Tensor.zeros(shape);
        float[] v = new float[(int) t.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.05);
        }
        t.copyFrom(Tensor.of(v, shape));
        return t;
    }

    /** Runs every strategy; used by the command. */
    static List<Result> runAll(Shape s, int warmup, int iterations, java.util.function.Consumer<Result> progress) {
        var out = new ArrayList<Result>();
        for (var entry : strategies(s).entrySet()) {
            Result r = run(entry.getKey(), entry.getValue(), s, warmup, iterations);
            progress.accept(r);
            out.add(r);
        }
        return out;
    }
}
