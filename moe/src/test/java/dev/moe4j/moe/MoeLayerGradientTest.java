package dev.moe4j.moe;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.testing.FiniteDifferences;
import dev.moe4j.moe.testing.ReferenceMoe;
import dev.moe4j.moe.testing.ReferenceRouting;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole layer per routing strategy: the float32 forward against a naive float64 layer, and the float32
 * backward (dx and every parameter, auxiliary losses included) against central finite differences of
 * Σ dOut ⊙ output + Σ coefficient · loss, with the discrete decisions held fixed.
 */
class MoeLayerGradientTest {
    private static final int TOKENS = 10;
    private static final int H = 8;
    private static final int I = 6;

    record Case(String name, MoeConfig config) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("switch: top-1 ReLU experts, jitter, capacity, switch + z losses",
                        MoeConfig.builder(H, I, 4, 1).ffn(ExpertFfn.plain(Activation.RELU)).noise(Noise.jitter(0.1))
                                .capacity(Capacity.switchFactor(1.0)).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.5)
                                .loss(new RouterZLoss(), 0.2).build()),
                new Case("mixtral: top-2 renormalised SwiGLU",
                        MoeConfig.builder(H, I, 4, 2).normalizeTopK(true)
                                .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.3).build()),
                new Case("qwen2-moe: top-3 with a gated shared expert, re-routing at capacity",
                        MoeConfig.builder(H, I, 5, 3).sharedExpert(7, true).capacity(Capacity.switchFactor(1.0))
                                .overflow(Overflow.NEXT_CHOICE).priority(Priority.SCORE).build()),
                new Case("deepseek-v3: sigmoid, groups, selection bias, scaling, shared experts, sequence loss",
                        MoeConfig.builder(H, I, 8, 2).scoring(Scoring.SIGMOID).normalizeTopK(true)
                                .selectionBias(true).groupLimit(GroupLimit.deepSeekV3(4, 2)).routedScalingFactor(2.5)
                                .sharedExpert(2 * I, false).loss(new SequenceLoss(), 0.4).build()),
                new Case("gpt-oss: top-k then softmax, router and expert biases, clamped SwiGLU",
                        MoeConfig.builder(H, I, 4, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true)
                                .expertBias(true).ffn(ExpertFfn.clampedSwiglu(1.702f, 1.0f)).build()),
                new Case("noisy top-k with learned noise, GeGLU, importance + load losses",
                        MoeConfig.builder(H, I, 4, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                                .noise(Noise.learnedGaussian()).ffn(ExpertFfn.gated(Activation.GELU))
                                .loss(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES), 0.5)
                                .loss(new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.5).build()),
                new Case("dense MoE with GELU experts",
                        MoeConfig.builder(H, I, 3, 3).router(RouterKind.DENSE).ffn(ExpertFfn.plain(Activation.GELU_TANH))
                                .build()),
                new Case("expert choice",
                        MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE)
                                .capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1))
                                .loss(new RouterZLoss(), 0.1).build()),
                new Case("soft moe",
                        MoeConfig.builder(H, I, 3, 1).router(RouterKind.SOFT).slotsPerExpert(2).build()));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void layerGradientsMatchFiniteDifferencesOfTheFloat64Layer(Case cs) {
        MoeConfig c = cs.config();
        var random = new Random(cs.name().hashCode());
        MoeLayer layer = MoeLayer.initialize(c);
        for (Parameter p : layer.parameters()) {
            if (p.name().endsWith("bias") || p.name().endsWith("noise_weight")) {
                fill(p.value(), random, 0.3);
            }
        }
        for (Tensor b : layer.buffers().values()) {
            fill(b, random, 0.05);
        }
        Tensor x = FiniteDifferences.gaussian(random, 1.0, TOKENS, H);
        int sequence = c.losses().stream().anyMatch(t -> t.loss() instanceof SequenceLoss) ? 5 : TOKENS;
        MoeResult result = layer.forward(x, sequence, Mode.TRAINING);
        Tensor dOut = FiniteDifferences.gaussian(random, 1.0, TOKENS, H);
        Tensor dx = layer.backward(result.context(), dOut);

        var ref = new ReferenceMoe(c);
        var decisions = ReferenceRouting.Decisions.of(c, result.context().routing());
        Map<String, double[]> params = new HashMap<>();
        for (Parameter p : layer.parameters()) {
            params.put(p.name(), FiniteDifferences.toDouble(p.value()));
        }
        for (var b : layer.buffers().entrySet()) {
            params.put(b.getKey(), FiniteDifferences.toDouble(b.getValue()));
        }
        double[] xd = FiniteDifferences.toDouble(x), dOutD = FiniteDifferences.toDouble(dOut);

        double[] expected = ref.output(xd, params, decisions);
        double err = FiniteDifferences.relativeError(expected, result.output().toFloatArray());
        assertTrue(err < 1e-5, "output relative error " + err);
        var r = ref.routing().route(xd, params, decisions);
        for (int i = 0; i < c.losses().size(); i++) {
            double v = ref.routing().loss(c.losses().get(i).loss(), r, decisions);
            assertEquals(v, result.losses().get(i).value(), 1e-5 * Math.max(1, Math.abs(v)));
        }

        java.util.function.DoubleSupplier objective = () -> ref.objective(xd, params, decisions, dOutD);
        FiniteDifferences.check("dx", xd, dx, objective, 30, random);
        for (Parameter p : layer.parameters()) {
            FiniteDifferences.check(p.name(), params.get(p.name()), p.grad(), objective, 30, random);
        }
    }

    private static void fill(Tensor t, Random random, double std) {
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (random.nextGaussian() * std));
        }
    }
}
