package dev.moe4j.moe;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.moe.expert.ExpertAdapters;
import dev.moe4j.moe.expert.ExpertLora;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.moe.testing.FiniteDifferences;
import dev.moe4j.moe.testing.ReferenceMoe;
import dev.moe4j.moe.testing.ReferenceRouting;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An MoE layer fine-tuned with LoRA: frozen router, experts, shared expert and gate, with adapters on the router,
 * on the routed experts (one over the fused gate and up rows, one on down) and on the shared expert (gate, up and
 * down apart). The layer equals the float64 layer over the merged weights W + scale · b · a, its backward gives
 * dx and every adapter's gradient (the balance loss's included) as central differences of that layer, and the
 * frozen weights take no gradient.
 */
class MoeLayerAdaptersTest {
    static final int TOKENS = 10, H = 8, I = 6, S = 7, E = 4, R = 3;
    static final float SCALE = 0.75f;

    private final Random random = new Random(5);

    private Parameter gaussian(String name, double std, int... shape) {
        return new Parameter(name, FiniteDifferences.gaussian(random, std, shape));
    }

    @Test
    void frozenLayerWithAdaptersEqualsTheMergedLayerAndTrainsOnlyItsAdapters() {
        MoeConfig c = MoeConfig.builder(H, I, E, 2).normalizeTopK(true).sharedExpert(S, true)
                .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.3).build();
        MoeLayer base = MoeLayer.initialize(c);
        Map<String, Tensor> w = new HashMap<>();
        base.parameters().forEach(p -> w.put(p.name(), p.value()));

        var routerLora = new Lora(gaussian("router.lora_a", 0.3, R, H), gaussian("router.lora_b", 0.3, E, R), SCALE);
        var routed = new ExpertAdapters(lora("experts.gate_up_proj", E, 2 * I, H), null, null,
                lora("experts.down_proj", E, H, I));
        var shared = new ExpertAdapters(null, lora("shared_experts.gate_proj", 1, S, H),
                lora("shared_experts.up_proj", 1, S, H), lora("shared_experts.down_proj", 1, H, S));
        MoeLayer layer = MoeLayer.of(c, new TopKRouter(c, w.get("router.weight"), null, null, null, routerLora),
                stacked("experts.", w), stacked("shared_experts.", w), w.get("shared_expert_gate.weight"), routed,
                shared).freezeBase();
        assertEquals(12, layer.adapterParameters().size());
        assertEquals(layer.adapterParameters(), layer.parameters().stream().filter(Parameter::requiresGrad).toList());

        Tensor x = FiniteDifferences.gaussian(random, 1.0, TOKENS, H);
        MoeResult result = layer.forward(x, TOKENS, Mode.TRAINING);
        Tensor dOut = FiniteDifferences.gaussian(random, 1.0, TOKENS, H);
        Tensor dx = layer.backward(result.context(), dOut);

        Map<String, double[]> baseD = new HashMap<>();
        w.forEach((n, t) -> baseD.put(n, FiniteDifferences.toDouble(t)));
        Map<String, double[]> adapters = new LinkedHashMap<>();
        layer.adapterParameters().forEach(p -> adapters.put(p.name(), FiniteDifferences.toDouble(p.value())));
        var ref = new ReferenceMoe(c);
        var decisions = ReferenceRouting.Decisions.of(c, result.context().routing());
        double[] xd = FiniteDifferences.toDouble(x), dOutD = FiniteDifferences.toDouble(dOut);

        double err = FiniteDifferences.relativeError(ref.output(xd, merged(baseD, adapters), decisions),
                result.output().toFloatArray());
        assertTrue(err < 1e-5, "output relative error " + err);
        java.util.function.DoubleSupplier objective = () -> ref.objective(xd, merged(baseD, adapters), decisions, dOutD);
        FiniteDifferences.check("dx", xd, dx, objective, 30, random);
        for (Parameter p : layer.adapterParameters()) {
            FiniteDifferences.check(p.name(), adapters.get(p.name()), p.grad(), objective, 30, random);
        }
        for (Parameter p : layer.parameters()) {
            assertFalse(!adapters.containsKey(p.name()) && p.hasGrad(), p.name() + " is frozen: no gradient");
        }
    }

    private ExpertLora lora(String name, int experts, int out, int in) {
        return new ExpertLora(gaussian(name + ".lora_a", 0.3, experts, R, in),
                gaussian(name + ".lora_b", 0.3, experts, out, R), SCALE);
    }

    private static StackedExpertWeights stacked(String prefix, Map<String, Tensor> w) {
        return new StackedExpertWeights(prefix, true, w.get(prefix + "gate_up_proj"), w.get(prefix + "down_proj"),
                null, null);
    }

    /** The layer's weights with every adapter merged: W + scale · b · a (per expert; gate rows, then up rows). */
    private static Map<String, double[]> merged(Map<String, double[]> base, Map<String, double[]> a) {
        Map<String, double[]> out = new HashMap<>();
        base.forEach((n, v) -> out.put(n, v.clone()));
        add(out.get("router.weight"), 0, a.get("router.lora_a"), a.get("router.lora_b"), 0, E, H);
        for (int e = 0; e < E; e++) {
            add(out.get("experts.gate_up_proj"), e * 2 * I * H, a.get("experts.gate_up_proj.lora_a"),
                    a.get("experts.gate_up_proj.lora_b"), e, 2 * I, H);
            add(out.get("experts.down_proj"), e * H * I, a.get("experts.down_proj.lora_a"),
                    a.get("experts.down_proj.lora_b"), e, H, I);
        }
        add(out.get("shared_experts.gate_up_proj"), 0, a.get("shared_experts.gate_proj.lora_a"),
                a.get("shared_experts.gate_proj.lora_b"), 0, S, H);
        add(out.get("shared_experts.gate_up_proj"), S * H, a.get("shared_experts.up_proj.lora_a"),
                a.get("shared_experts.up_proj.lora_b"), 0, S, H);
        add(out.get("shared_experts.down_proj"), 0, a.get("shared_experts.down_proj.lora_a"),
                a.get("shared_experts.down_proj.lora_b"), 0, H, S);
        return out;
    }

    /** w[at + o·in + i] += scale · Σ_r b[e, o, r] · a[e, r, i]. */
    private static void add(double[] w, int at, double[] a, double[] b, int e, int out, int in) {
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int r = 0; r < R; r++) {
                    s += b[(e * out + o) * R + r] * a[(e * R + r) * in + i];
                }
                w[at + o * in + i] += SCALE * s;
            }
        }
    }
}
