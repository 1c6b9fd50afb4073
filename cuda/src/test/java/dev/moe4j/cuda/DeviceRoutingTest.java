package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.router.TopKRouter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.stream.Stream;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * Token-choice routing on the GPU ({@code route_top_k}) chooses what the host's TopKRouter chooses from the same
 * logits, expert for expert and in the same order (ties to the lower expert), with the same gate weights up to the
 * rounding of a softmax's sum; and the routing it reports on the host afterwards is that same decision.
 */
class DeviceRoutingTest {
    private static final int H = 48;
    private static final int TOKENS = 37;

    record Case(String name, MoeConfig config) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> routers() {
        return Stream.of(
                new Case("mixtral: softmax, top-2 of 8 renormalised", MoeConfig.builder(H, 32, 8, 2).normalizeTopK(true).build()),
                new Case("qwen3-moe: softmax, top-8 of 64 renormalised", MoeConfig.builder(H, 32, 64, 8).normalizeTopK(true).build()),
                new Case("qwen2-moe: softmax, top-4 of 60 as they are", MoeConfig.builder(H, 32, 60, 4).build()),
                new Case("deepseek-v3: sigmoid, selection bias, 8 groups keep 4, scaling 2.5, top-8 of 64",
                        MoeConfig.builder(H, 32, 64, 8).scoring(Scoring.SIGMOID).normalizeTopK(true)
                                .selectionBias(true).groupLimit(GroupLimit.deepSeekV3(8, 4)).routedScalingFactor(2.5)
                                .build()),
                new Case("deepseek-v2: groups scored by their best, not renormalised, scaling 16",
                        MoeConfig.builder(H, 32, 48, 6).groupLimit(new GroupLimit(6, 3, 1)).routedScalingFactor(16)
                                .build()),
                new Case("gpt-oss: top-4 of 32 then softmax, router bias",
                        MoeConfig.builder(H, 32, 32, 4).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true).build()),
                new Case("switch: top-1 of 16", MoeConfig.builder(H, 32, 16, 1).build()),
                new Case("dense: all 8 of 8, sigmoid", MoeConfig.builder(H, 32, 8, 8).scoring(Scoring.SIGMOID).build()));
    }

    @ParameterizedTest
    @MethodSource("routers")
    void chooseAndWeighAsTheHostRouterFromTheSameLogits(Case c) {
        CudaDevice d = Gpu.device();
        MoeConfig config = c.config();
        int e = config.experts(), k = config.topK();
        var random = new Random(17);
        Tensor weight = bf16Normal(random, 0.5, e, H);
        // Experts 1 and 2 (and e-2, e-1) with the same weights: their logits tie, which the lower index must win.
        for (int i = 0; i < H; i++) {
            weight.set(weight.get(1, i), 2, i);
            weight.set(weight.get(e - 2, i), e - 1, i);
        }
        Tensor bias = config.routerBias() ? bf16Normal(random, 0.1, e) : null;
        Tensor selection = null;
        if (config.selectionBias()) {
            selection = bf16Normal(random, 0.05, e);
            selection.setFloat(2, selection.getFloat(1));
        }
        var host = new TopKRouter(config, weight, bias, null, selection);
        try (var scope = MemoryScope.open()) {
            var gpu = new TopKRouter(config, d.upload(weight, DType.F32), bias == null ? null : d.upload(bias, DType.F32),
                    null, selection == null ? null : selection.copy());
            Tensor x = d.upload(bf16Normal(random, 1, TOKENS, H), DType.BF16);
            TopKRouter.DeviceRouting routed = gpu.routeOnDevice(x);
            assertNotNull(routed, c + ": routed on the device");
            int[] chosen = d.backend().toHost(routed.experts()).segment().toArray(ValueLayout.JAVA_INT);
            float[] weights = d.backend().toHost(routed.weights()).toFloatArray();
            Routing reported = routed.onHost().get();
            Routing expected = host.routeLogits(reported.logits(), TOKENS);
            assertArrayEquals(expected.choices(), chosen, c + ": experts");
            float[] gates = expected.topKGates();
            double worst = 0;
            for (int t = 0; t < TOKENS; t++) {
                for (int j = 0; j < k; j++) {
                    float want = gates[t * e + chosen[t * k + j]], got = weights[t * k + j];
                    assertEquals(want, got, 1e-6 * Math.max(1, Math.abs(want)), c + ": weight " + j + " of token " + t);
                    worst = Math.max(worst, Math.abs(want - got));
                }
            }
            System.out.printf("device routing, %s: choices identical, weights within %.2e%n", c, worst);
            // what the host is told afterwards is the decision that ran
            assertArrayEquals(expected.choices(), reported.choices(), c + ": reported experts");
            assertArrayEquals(expected.topKGates(), reported.topKGates(), c + ": reported weights");
            assertArrayEquals(expected.dispatch().token(), reported.dispatch().token(), c + ": reported dispatch");
        }
    }

    @Test
    void aCapacityThatCouldDropAChoiceLeavesTheRoutingToTheHost() {
        CudaDevice d = Gpu.device();
        MoeConfig config = MoeConfig.builder(H, 32, 8, 2).capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1)).build();
        var random = new Random(3);
        try (var scope = MemoryScope.open()) {
            var gpu = new TopKRouter(config, d.upload(bf16Normal(random, 1, 8, H), DType.F32), null, null, null);
            assertNull(gpu.routeOnDevice(d.upload(bf16Normal(random, 1, TOKENS, H), DType.BF16)));
            assertNotNull(gpu.routeOnDevice(d.upload(bf16Normal(random, 1, 1, H), DType.BF16)),
                    "one token, whom every expert has room for, drops nothing");
        }
    }
}
