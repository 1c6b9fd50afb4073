package dev.moe4j.moe.perf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.MatMul;
import dev.moe4j.core.perf.Timing;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.Experts;
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
import java.util.List;
import java.util.Random;

/**
 * The MoE layer's forward + backward per routing strategy, against what it cannot go below: the matmuls its
 * experts do, alone, on the same per-expert row counts. The ratio is what routing, permutation, activations,
 * combine and the balance losses cost on top (the target is at most 1.25). One dense SwiGLU FFN with the same
 * FLOPs as top-k's experts (intermediate k·I over all tokens) shows what splitting the work into experts costs.
 */
public final class MoeBenchmark {
    private MoeBenchmark() {
    }

    /** The layer's shape: tokens × hidden in, E experts of width I, k per token. */
    public record Shape(int tokens, int hidden, int intermediate, int experts, int topK) {
        public Shape {
            if (tokens < 1 || hidden < 1 || intermediate < 1 || experts < 1 || topK < 1 || topK > experts) {
                throw new BadInputException("moe bench: need tokens, hidden, intermediate, experts >= 1 and "
                        + "1 <= top-k <= experts; got " + this);
            }
        }
    }

    /** A named routing configuration; {@code key} selects it on the command line. */
    public record Strategy(String key, String description, MoeConfig config) {
    }

    /**
     * One strategy's figures.
     *
     * @param expertRows   rows the experts processed (assignments, or slots for Soft MoE)
     * @param expertFlops  FLOPs of the experts' matmuls in one forward + backward
     * @param layer        seconds per forward + backward of the layer
     * @param matmuls      seconds per forward + backward of the experts' matmuls alone
     */
    public record Result(Strategy strategy, int expertRows, double expertFlops, double droppedFraction, Timing layer,
                         Timing matmuls) {
        /** Layer time over expert-matmul time, best against best. */
        public double overhead() {
            return layer.bestSeconds() / matmuls.bestSeconds();
        }

        /** The experts' FLOPs per second of layer time (best call), in GFLOP/s. */
        public double layerGflops() {
            return expertFlops / layer.bestSeconds() / 1e9;
        }

        public double matmulGflops() {
            return expertFlops / matmuls.bestSeconds() / 1e9;
        }
    }

    /** Every strategy the benchmark knows, at this shape; all but {@code dense} and {@code switch} do top-k's FLOPs. */
    public static List<Strategy> strategies(Shape s) {
        int h = s.hidden(), i = s.intermediate(), e = s.experts(), k = s.topK();
        var out = new ArrayList<Strategy>();
        out.add(new Strategy("topk", "top-k softmax, renormalised, dropless (Mixtral)",
                MoeConfig.builder(h, i, e, k).normalizeTopK(true)
                        .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.02).build()));
        out.add(new Strategy("switch", "top-1, jitter, capacity 1.25, switch + z losses (Switch)",
                MoeConfig.builder(h, i, e, 1).noise(Noise.jitter(0.01)).capacity(Capacity.switchFactor(1.25))
                        .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.01).loss(new RouterZLoss(), 0.001).build()));
        out.add(new Strategy("capacity", "top-k, capacity 1.25, batch priority, re-route (V-MoE)",
                MoeConfig.builder(h, i, e, k).capacity(Capacity.vmoeFactor(1.25)).priority(Priority.SCORE)
                        .overflow(Overflow.NEXT_CHOICE).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.01).build()));
        if (e % 4 == 0 && e >= 8 && k <= e / 2) {
            out.add(new Strategy("deepseek", "sigmoid, 4 groups, selection bias, sequence loss (DeepSeek-V3)",
                    MoeConfig.builder(h, i, e, k).scoring(Scoring.SIGMOID).normalizeTopK(true).selectionBias(true)
                            .groupLimit(GroupLimit.deepSeekV3(4, 2)).routedScalingFactor(2.5)
                            .loss(new SequenceLoss(), 0.0001).build()));
        }
        if (k < e) {
            out.add(new Strategy("noisy", "noisy top-k, learned noise, importance + load (Shazeer 2017)",
                    MoeConfig.builder(h, i, e, k).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                            .noise(Noise.learnedGaussian()).loss(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES), 0.01)
                            .loss(new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.01).build()));
        }
        out.add(new Strategy("expert-choice", "expert choice, capacity factor k (Zhou 2022)",
                MoeConfig.builder(h, i, e, 1).router(RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.factor(k, Capacity.Rounding.CEIL, 1)).build()));
        out.add(new Strategy("soft", "Soft MoE, tokens·k/experts slots per expert (Puigcerver 2023)",
                MoeConfig.builder(h, i, e, 1).router(RouterKind.SOFT)
                        .slotsPerExpert(Math.max(1, s.tokens() * k / e)).build()));
        out.add(new Strategy("dense", "dense MoE: every token to every expert",
                MoeConfig.builder(h, i, e, e).router(RouterKind.DENSE).build()));
        return out;
    }

    /**
     * Times the layer's forward + backward and its experts' matmuls alone on the row counts it routed, one call of
     * each in turn, so that whatever else runs on the machine disturbs both alike; until both have
     * {@code minIterations} calls and {@code minSeconds} of timed work.
     */
    public static Result run(Strategy strategy, Shape s, int warmups, int minIterations, double minSeconds) {
        MoeLayer layer = MoeLayer.initialize(strategy.config());
        var random = new Random(17);
        Tensor x = gaussian(random, s.tokens(), s.hidden()), dOut = gaussian(random, s.tokens(), s.hidden());
        MoeResult[] last = new MoeResult[1];
        // Gradients accumulate across calls, as the bare matmuls' do: zeroing them belongs to the optimiser step.
        Runnable layerStep = () -> {
            last[0] = layer.forward(x, s.tokens(), Mode.TRAINING);
            layer.backward(last[0].context(), dOut);
        };
        layerStep.run();
        var routing = last[0].routing();
        int[] offsets = routing.dispatch() != null ? routing.dispatch().offsets()
                : slotOffsets(strategy.config().experts(), strategy.config().slotsPerExpert());
        Runnable matmulStep = expertMatmuls(s.hidden(), s.intermediate(), offsets);
        for (int i = 0; i < warmups; i++) {
            layerStep.run();
            matmulStep.run();
        }
        List<Long> layerNanos = new ArrayList<>(), matmulNanos = new ArrayList<>();
        long total = 0;
        while (layerNanos.size() < minIterations || total < minSeconds * 1e9) {
            long t0 = System.nanoTime();
            layerStep.run();
            long t1 = System.nanoTime();
            matmulStep.run();
            long t2 = System.nanoTime();
            layerNanos.add(t1 - t0);
            matmulNanos.add(t2 - t1);
            total += t2 - t0;
        }
        int rows = offsets[offsets.length - 1];
        return new Result(strategy, rows, flops(rows, s.hidden(), s.intermediate()),
                last[0].stats().droppedFraction(), timing(layerNanos), timing(matmulNanos));
    }

    private static Timing timing(List<Long> nanos) {
        long[] sorted = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
        return new Timing(sorted[0] / 1e9, sorted[sorted.length / 2] / 1e9, sorted.length);
    }

    /** One dense SwiGLU FFN of width k·I over every token: top-k's expert FLOPs as one matmul chain. */
    public static Timing denseChain(Shape s, int warmups, int minIterations, double minSeconds) {
        return Timing.measure(expertMatmuls(s.hidden(), s.topK() * s.intermediate(), new int[] {0, s.tokens()}),
                warmups, minIterations, minSeconds);
    }

    /** FLOPs of a SwiGLU FFN's matmuls over {@code rows} rows, forward (6·H·I a row) and backward (twice that). */
    public static double flops(long rows, int hidden, int intermediate) {
        return 18.0 * rows * hidden * intermediate;
    }

    private static int[] slotOffsets(int experts, int slotsPerExpert) {
        int[] offsets = new int[experts + 1];
        for (int e = 0; e <= experts; e++) {
            offsets[e] = e * slotsPerExpert;
        }
        return offsets;
    }

    /**
     * The six matmuls per expert of a SwiGLU expert's forward (gate+up, down) and backward (two input gradients,
     * two weight gradients), under the layer's own schedule of experts.
     */
    static Runnable expertMatmuls(int h, int inter, int[] offsets) {
        int e = offsets.length - 1, n = offsets[e];
        var random = new Random(5);
        Tensor x = gaussian(random, n, h), gu = Tensor.zeros(n, 2 * inter), a = gaussian(random, n, inter);
        Tensor y = Tensor.zeros(n, h), dy = gaussian(random, n, h), da = Tensor.zeros(n, inter);
        Tensor dgu = gaussian(random, n, 2 * inter), dx = Tensor.zeros(n, h);
        Tensor wGu = gaussian(random, e, 2 * inter, h), wDown = gaussian(random, e, h, inter);
        Tensor gGu = Tensor.zeros(e, 2 * inter, h), gDown = Tensor.zeros(e, h, inter);
        return () -> {
            Experts.forEachExpert(offsets, (ex, from, to) -> {
                MatMul.forward(gu.slice(from, to), x.slice(from, to), wGu.select(ex));
                MatMul.forward(y.slice(from, to), a.slice(from, to), wDown.select(ex));
            });
            Experts.forEachExpert(offsets, (ex, from, to) -> {
                MatMul.backwardInput(da.slice(from, to), dy.slice(from, to), wDown.select(ex), false);
                MatMul.backwardWeight(gDown.select(ex), dy.slice(from, to), a.slice(from, to), true);
                MatMul.backwardWeight(gGu.select(ex), dgu.slice(from, to), x.slice(from, to), true);
                MatMul.backwardInput(dx.slice(from, to), dgu.slice(from, to), wGu.select(ex), false);
            });
        };
    }

    private static Tensor gaussian(Random random, int... shape) {
        float[] v = new float[(int) Tensor.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.05);
        }
        return Tensor.of(v, shape);
    }
}
