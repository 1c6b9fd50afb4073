package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.testing.FiniteDifferences;
import dev.moe4j.moe.testing.ReferenceRouting;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every router and every balance loss: the float32 forward against a float64 reference, and the float32 backward
 * against central finite differences of that reference, with the discrete decisions held fixed. The objective is
 * Σ R_w ⊙ weights + Σ R_g ⊙ gates + Σ coefficient · loss (Soft MoE: Σ R_d ⊙ dispatch + Σ R_c ⊙ combine) for
 * random R.
 */
class RouterGradientTest {
    private static final int TOKENS = 12;
    private static final int HIDDEN = 10;

    record Case(String name, MoeConfig config, int sequenceLength) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("switch top-1, jitter, capacity drop, switch + z losses",
                        MoeConfig.builder(HIDDEN, 4, 6, 1).noise(Noise.jitter(0.2)).capacity(Capacity.switchFactor(1.0))
                                .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.7).loss(new RouterZLoss(), 0.3).build(), TOKENS),
                new Case("mixtral top-2 renormalised, transformers switch loss",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).normalizeTopK(true)
                                .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.5).build(), TOKENS),
                new Case("qwen2 top-3 not renormalised, capacity, re-route by score priority",
                        MoeConfig.builder(HIDDEN, 4, 6, 3).capacity(Capacity.switchFactor(1.0))
                                .overflow(Overflow.NEXT_CHOICE).priority(Priority.SCORE)
                                .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 1.0).build(), TOKENS),
                new Case("deepseek sigmoid, selection bias, groups, scaling, sequence loss",
                        MoeConfig.builder(HIDDEN, 4, 8, 3).scoring(Scoring.SIGMOID).normalizeTopK(true)
                                .selectionBias(true).groupLimit(GroupLimit.deepSeekV3(4, 2)).routedScalingFactor(2.5)
                                .loss(new SequenceLoss(), 0.8).loss(new RouterZLoss(), 0.1).build(), 4),
                new Case("sigmoid not renormalised with switch loss",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).scoring(Scoring.SIGMOID)
                                .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 1.0).build(), TOKENS),
                new Case("gpt-oss top-k then softmax with router bias",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true)
                                .loss(new RouterZLoss(), 1.0).build(), TOKENS),
                new Case("noisy top-k (learned noise), Shazeer's importance of the top-k gates + load losses",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                                .noise(Noise.learnedGaussian())
                                .loss(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES), 0.6)
                                .loss(new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.9).build(), TOKENS),
                new Case("v-moe fixed noise, batch priority, V-MoE's clean importance and load losses",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).noise(Noise.gaussian(1.0 / 6))
                                .capacity(Capacity.vmoeFactor(1.0)).priority(Priority.SCORE)
                                .loss(new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX), 0.5)
                                .loss(new LoadLoss(LoadLoss.Threshold.KTH_NOISY), 0.5).build(), TOKENS),
                new Case("learned noise, importance of the noisy softmax",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).noise(Noise.learnedGaussian())
                                .loss(new ImportanceLoss(ImportanceLoss.Of.NOISY_SOFTMAX), 0.7).build(), TOKENS),
                new Case("top-k then softmax with learned noise, importance of the noisy softmax",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                                .noise(Noise.learnedGaussian())
                                .loss(new ImportanceLoss(ImportanceLoss.Of.NOISY_SOFTMAX), 0.7).build(), TOKENS),
                new Case("renormalised, scaled, fixed noise, capacity drop, importance of the top-k gates",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).normalizeTopK(true).routedScalingFactor(1.7)
                                .noise(Noise.gaussian(0.3)).capacity(Capacity.fixed(3))
                                .loss(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES), 0.8).build(), TOKENS),
                new Case("sigmoid, re-routed at capacity, importance of the top-k gates and of the clean scores",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).scoring(Scoring.SIGMOID).capacity(Capacity.fixed(3))
                                .overflow(Overflow.NEXT_CHOICE)
                                .loss(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES), 0.8)
                                .loss(new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX), 0.4).build(), TOKENS),
                new Case("top-k then softmax re-routed at capacity",
                        MoeConfig.builder(HIDDEN, 4, 6, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                                .capacity(Capacity.fixed(3)).overflow(Overflow.NEXT_CHOICE).build(), TOKENS),
                new Case("dense",
                        MoeConfig.builder(HIDDEN, 4, 5, 5).router(RouterKind.DENSE)
                                .loss(new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX), 1.0).build(), TOKENS),
                new Case("expert choice with z and importance losses",
                        MoeConfig.builder(HIDDEN, 4, 6, 1).router(RouterKind.EXPERT_CHOICE)
                                .capacity(Capacity.factor(2.0, Capacity.Rounding.CEIL, 1))
                                .loss(new RouterZLoss(), 0.5)
                                .loss(new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX), 0.5).build(), TOKENS),
                new Case("soft moe normalised",
                        MoeConfig.builder(HIDDEN, 4, 3, 1).router(RouterKind.SOFT).slotsPerExpert(2).build(), TOKENS),
                new Case("soft moe plain",
                        MoeConfig.builder(HIDDEN, 4, 3, 1).router(RouterKind.SOFT).slotsPerExpert(2)
                                .softNormalize(false).build(), TOKENS));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void routerAndLossGradientsMatchFiniteDifferencesOfTheFloat64Reference(Case cs) {
        MoeConfig c = cs.config();
        var random = new Random(cs.name().hashCode());
        Router router = Routers.initialize(c, new SplittableRandom(3));
        randomise(router, random);
        Tensor x = FiniteDifferences.gaussian(random, 1.0, TOKENS, HIDDEN);
        Routing r = router.route(x, Mode.TRAINING, new SplittableRandom(11));
        if (cs.sequenceLength() != TOKENS) {
            r.sequenceLength(cs.sequenceLength());
        }
        int e = c.experts(), cols = c.router() == RouterKind.SOFT ? e * c.slotsPerExpert() : e;
        double[] rw = randomArray(random, TOKENS * cols), rg = randomArray(random, TOKENS * cols);

        // Analytic float32 gradients.
        var grads = new RouterGrads(TOKENS, cols);
        if (c.router() == RouterKind.SOFT) {
            copy(rw, grads.dispatch());
            copy(rg, grads.combine());
        } else {
            float[] dw = grads.weights();
            var d = r.dispatch();
            int[] ex = d.expertOfRows();
            for (int i = 0; i < d.rows(); i++) {
                int at = d.token()[i] * e + ex[i];
                dw[at] = (float) rw[at];
            }
            copy(rg, grads.gates());
            for (LossTerm term : c.losses()) {
                term.loss().backward(r, (float) term.coefficient(), grads);
            }
        }
        Tensor dx = Tensor.zeros(TOKENS, HIDDEN);
        router.backward(r, x, grads, dx);

        // The float64 reference with the same decisions.
        var ref = new ReferenceRouting(c);
        var decisions = ReferenceRouting.Decisions.of(c, r);
        Map<String, double[]> params = new HashMap<>();
        for (Parameter p : router.parameters()) {
            params.put(p.name(), FiniteDifferences.toDouble(p.value()));
        }
        for (var b : router.buffers().entrySet()) {
            params.put(b.getKey(), FiniteDifferences.toDouble(b.getValue()));
        }
        double[] xd = FiniteDifferences.toDouble(x);
        var out = ref.route(xd, params, decisions);
        checkForward(c, r, out, ref, decisions);

        java.util.function.DoubleSupplier objective = () -> {
            var o = ref.route(xd, params, decisions);
            double v = 0;
            if (c.router() == RouterKind.SOFT) {
                for (int i = 0; i < rw.length; i++) {
                    v += rw[i] * o.dispatch()[i] + rg[i] * o.combine()[i];
                }
                return v;
            }
            for (int i = 0; i < rw.length; i++) {
                v += rw[i] * o.weights()[i] + rg[i] * o.gates()[i];
            }
            for (LossTerm term : c.losses()) {
                v += term.coefficient() * ref.loss(term.loss(), o, decisions);
            }
            return v;
        };
        FiniteDifferences.check("dx", xd, dx, objective, 40, random);
        for (Parameter p : router.parameters()) {
            FiniteDifferences.check(p.name(), params.get(p.name()), p.grad(), objective, 40, random);
        }
    }

    private static void checkForward(MoeConfig c, Routing r, ReferenceRouting.Output out, ReferenceRouting ref,
                                     ReferenceRouting.Decisions d) {
        if (c.router() == RouterKind.SOFT) {
            assertTrue(FiniteDifferences.relativeError(out.dispatch(), r.soft().dispatch()) < 1e-5, "dispatch");
            assertTrue(FiniteDifferences.relativeError(out.combine(), r.soft().combine()) < 1e-5, "combine");
            return;
        }
        int e = c.experts();
        assertTrue(FiniteDifferences.relativeError(out.gates(), r.gates()) < 1e-5, "gates");
        var disp = r.dispatch();
        int[] ex = disp.expertOfRows();
        float[] dense = new float[r.tokens() * e];
        for (int i = 0; i < disp.rows(); i++) {
            dense[disp.token()[i] * e + ex[i]] = disp.weight()[i];
        }
        assertTrue(FiniteDifferences.relativeError(out.weights(), dense) < 1e-5, "combine weights");
        for (LossTerm term : c.losses()) {
            double expected = ref.loss(term.loss(), out, d);
            assertEquals(expected, term.loss().value(r), 1e-5 * Math.max(1, Math.abs(expected)), term.loss().name());
        }
    }

    /** Non-zero biases and noise weights, so that every path carries gradient. */
    private static void randomise(Router router, Random random) {
        for (Parameter p : router.parameters()) {
            if (p.name().equals("router.bias") || p.name().equals("router.noise_weight")) {
                fill(p.value(), random, 0.3);
            }
        }
        for (Tensor b : router.buffers().values()) {
            if (b.rank() == 1 && !Float.isNaN(b.getFloat(0))) {
                fill(b, random, 0.05);
            }
        }
    }

    private static void fill(Tensor t, Random random, double std) {
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (random.nextGaussian() * std));
        }
    }

    private static double[] randomArray(Random random, int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = random.nextGaussian();
        }
        return a;
    }

    private static void copy(double[] from, float[] to) {
        for (int i = 0; i < from.length; i++) {
            to[i] += (float) from[i];
        }
    }
}
