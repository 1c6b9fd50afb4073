package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.ExpertChoiceRouter;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Router;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.router.TopKRouter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static dev.moe4j.cuda.Gpu.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The one MoE layer with its weights on the GPU computes what it computes on the CPU from the same (BF16-rounded)
 * weights and input: the same experts for every token, the output and, in training, dL/dx and every parameter's
 * gradient (auxiliary losses included) within 1e-2 — per routing strategy, on the grouped products and on the
 * one-pass path a few decoding tokens take.
 */
class MoeLayerOnGpuTest {
    private static final double BF16 = 1e-2;
    private static final int H = 64;
    private static final int I = 48;

    record Case(String name, MoeConfig config) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("mixtral: top-2 renormalised SwiGLU, balance loss",
                        MoeConfig.builder(H, I, 8, 2).normalizeTopK(true)
                                .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.3).build()),
                new Case("qwen2-moe: top-3 with a gated shared expert, re-routing at capacity",
                        MoeConfig.builder(H, I, 6, 3).sharedExpert(40, true).capacity(Capacity.switchFactor(1.0))
                                .overflow(Overflow.NEXT_CHOICE).priority(Priority.SCORE).build()),
                new Case("deepseek-v3: sigmoid, groups, selection bias, scaling, shared expert, sequence loss",
                        MoeConfig.builder(H, I, 8, 2).scoring(Scoring.SIGMOID).normalizeTopK(true)
                                .selectionBias(true).groupLimit(GroupLimit.deepSeekV3(4, 2)).routedScalingFactor(2.5)
                                .sharedExpert(2 * I, false).loss(new SequenceLoss(), 0.4).build()),
                new Case("gpt-oss: top-k then softmax, router and expert biases, clamped SwiGLU",
                        MoeConfig.builder(H, I, 4, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true)
                                .expertBias(true).ffn(ExpertFfn.clampedSwiglu(1.702f, 7f)).build()),
                new Case("switch: top-1 ReLU experts, capacity with drops, learned noise, load loss",
                        MoeConfig.builder(H, I, 4, 1).ffn(ExpertFfn.plain(Activation.RELU))
                                .capacity(Capacity.switchFactor(1.0)).noise(Noise.learnedGaussian())
                                .gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                                .loss(new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.5).build()),
                new Case("expert choice",
                        MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE)
                                .capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1)).build()));
    }

    /**
     * Inference: the same strategies, but the switch layer without the load loss (which measures the noise that
     * inference does not add) and the expert-choice layer with thresholds estimated by a training pass first.
     */
    static Stream<Case> inferenceCases() {
        return Stream.concat(cases().filter(c -> !c.name().startsWith("switch")), Stream.of(
                new Case("switch: top-1 ReLU experts, capacity with drops",
                        MoeConfig.builder(H, I, 4, 1).ffn(ExpertFfn.plain(Activation.RELU))
                                .capacity(Capacity.switchFactor(1.0)).build())));
    }

    /** The layer's weights rounded to BF16 in place, so that the GPU's BF16 products see the same numbers. */
    private static MoeLayer cpuLayer(MoeConfig config) {
        MoeLayer layer = MoeLayer.initialize(config.toBuilder().seed(5).build());
        for (Parameter p : layer.parameters()) {
            p.value().copyFrom(p.value().to(DType.BF16));
        }
        return layer;
    }

    /**
     * The same layer on the GPU, routing buffers on the host: trainable F32 copies of its parameters, or for
     * inference BF16 matrices and F32 vectors and biases, as a model loads them.
     */
    private static MoeLayer onGpu(CudaDevice d, MoeLayer cpu, boolean trainable) {
        MoeConfig c = cpu.config();
        Map<String, Tensor> p = new HashMap<>();
        MemoryScope.persistent(() -> {
            cpu.parameters().forEach(x -> p.put(x.name(), d.upload(x.value(), trainable || x.value().rank() < 2
                    || x.name().endsWith("bias") ? DType.F32 : DType.BF16)));
            return null;
        });
        Router router = switch (cpu.router()) {
            case TopKRouter r -> new TopKRouter(c, p.get("router.weight"), p.get("router.bias"),
                    p.get("router.noise_weight"), r.selectionBias() == null ? null : r.selectionBias().copy());
            case ExpertChoiceRouter r -> new ExpertChoiceRouter(c, p.get("router.weight"), p.get("router.bias"),
                    r.buffers().get("router.expert_thresholds").copy());
            default -> throw new IllegalArgumentException("no GPU copy for " + cpu.router());
        };
        var experts = new StackedExpertWeights("experts.", c.ffn().gated(), p.get("experts.gate_up_proj"),
                p.get("experts.down_proj"), p.get("experts.gate_up_proj_bias"), p.get("experts.down_proj_bias"));
        var shared = c.sharedIntermediate() == 0 ? null : new StackedExpertWeights("shared_experts.", c.ffn().gated(),
                p.get("shared_experts.gate_up_proj"), p.get("shared_experts.down_proj"), null, null);
        return MoeLayer.of(c, router, experts, shared, p.get("shared_expert_gate.weight"));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void trainingPassesGiveTheCpusRoutingOutputAndGradients(Case c) {
        CudaDevice d = Gpu.device();
        var random = new Random(41);
        int tokens = 37;
        MoeLayer cpu = cpuLayer(c.config());
        MoeLayer gpu = onGpu(d, cpu, true);
        Tensor x = bf16Normal(random, 1, tokens, H), dOut = bf16Normal(random, 1, tokens, H);
        cpu.reseedNoise(9);
        gpu.reseedNoise(9);
        MoeResult expected = cpu.forward(x, Mode.TRAINING);
        Tensor dx = cpu.backward(expected.context(), dOut);
        try (var scope = MemoryScope.open()) {
            MoeResult actual = gpu.forward(d.upload(x, DType.BF16), Mode.TRAINING);
            Tensor gdx = gpu.backward(actual.context(), d.upload(dOut, DType.F32));
            if (expected.routing().choices() != null) {
                assertArrayEquals(expected.routing().choices(), actual.routing().choices(), c + ": experts");
            }
            assertArrayEquals(expected.routing().dispatch().token(), actual.routing().dispatch().token(),
                    c + ": dispatch");
            TensorAssert.assertClose(values(expected.output()), Tensor.of(Gpu.asFloats(actual.output()), tokens, H), BF16,
                    c + ": output");
            assertEquals(expected.auxLoss(), actual.auxLoss(), 1e-3 * Math.max(1e-3, Math.abs(expected.auxLoss())),
                    c + ": auxiliary losses");
            TensorAssert.assertClose(values(dx), Tensor.of(Gpu.asFloats(gdx), tokens, H), BF16, c + ": dx");
            List<Parameter> cpuParams = cpu.parameters(), gpuParams = gpu.parameters();
            assertEquals(cpuParams.size(), gpuParams.size());
            for (int i = 0; i < cpuParams.size(); i++) {
                Parameter e = cpuParams.get(i), a = gpuParams.get(i);
                assertEquals(e.name(), a.name());
                TensorAssert.assertClose(values(e.grad()), Tensor.of(Gpu.asFloats(a.grad()), e.value().shape()), BF16,
                        c + ": gradient of " + e.name());
            }
        } finally {
            for (Parameter p : gpu.parameters()) {
                d.free(p.value());
                if (p.hasGrad()) {
                    d.free(p.grad());
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("inferenceCases")
    void inferenceOfManyAndOfFewTokensGivesTheCpusOutput(Case c) {
        CudaDevice d = Gpu.device();
        var random = new Random(42);
        MoeLayer cpu = cpuLayer(c.config());
        if (c.config().router() == RouterKind.EXPERT_CHOICE) {
            cpu.forward(bf16Normal(random, 1, 64, H), Mode.TRAINING); // estimates the thresholds inference uses
        }
        MoeLayer inference = onGpu(d, cpu, false);
        try {
            for (int tokens : new int[] {29, 3, 1}) {
                Tensor x = bf16Normal(random, 1, tokens, H);
                MoeResult expected = cpu.forward(x, Mode.INFERENCE);
                try (var scope = MemoryScope.open()) {
                    MoeResult actual = inference.forward(d.upload(x, DType.BF16), Mode.INFERENCE);
                    TensorAssert.assertClose(values(expected.output()), Tensor.of(Gpu.asFloats(actual.output()), tokens, H),
                            BF16, c + ": output of " + tokens + " tokens");
                    // routed on the device or the host, the routing reported is the CPU's
                    if (expected.routing().choices() != null) {
                        assertArrayEquals(expected.routing().choices(), actual.routing().choices(),
                                c + ": experts of " + tokens + " tokens");
                    }
                    assertArrayEquals(expected.routing().dispatch().token(), actual.routing().dispatch().token(),
                            c + ": dispatch of " + tokens + " tokens");
                    assertEquals(expected.auxLoss(), actual.auxLoss(), 1e-3 * Math.max(1e-3, Math.abs(expected.auxLoss())),
                            c + ": auxiliary losses of " + tokens + " tokens");
                }
            }
        } finally {
            for (Parameter p : inference.parameters()) {
                d.free(p.value());
            }
        }
    }

    /**
     * A decoding step routed on the device makes its host routing only when asked, from the step's device memory:
     * asked after the step's memory scope closed, it is refused rather than read from memory that is gone.
     */
    @Test
    void aDecodingStepRoutedOnTheDeviceReportsItsRoutingInsideItsScopeOnly() {
        CudaDevice d = Gpu.device();
        MoeConfig mixtral = MoeConfig.builder(H, I, 8, 2).normalizeTopK(true).build();
        MoeLayer cpu = cpuLayer(mixtral);
        MoeLayer gpu = onGpu(d, cpu, false);
        var random = new Random(8);
        try {
            Tensor x = bf16Normal(random, 1, 1, H);
            MoeResult inside, after;
            try (var scope = MemoryScope.open()) {
                inside = gpu.forward(d.upload(x, DType.BF16), Mode.INFERENCE);
                assertArrayEquals(cpu.forward(x, Mode.INFERENCE).routing().choices(), inside.routing().choices());
                after = gpu.forward(d.upload(x, DType.BF16), Mode.INFERENCE);
            }
            assertArrayEquals(inside.routing().choices(), inside.routing().choices(), "kept once made");
            var e = assertThrows(IllegalStateException.class, after::routing);
            assertTrue(e.getMessage().contains("memory scope"), e.getMessage());
        } finally {
            for (Parameter p : gpu.parameters()) {
                d.free(p.value());
            }
        }
    }

    @Test
    void optionsThatNeedTheInputOnTheHostAreRefusedInOneLine() {
        CudaDevice d = Gpu.device();
        MoeConfig jitter = MoeConfig.builder(H, I, 4, 2).noise(Noise.jitter(0.1)).build();
        MoeLayer gpu = onGpu(d, cpuLayer(jitter), true);
        try (var scope = MemoryScope.open()) {
            Tensor x = d.upload(Tensor.zeros(3, H), DType.BF16);
            var e = assertThrows(dev.moe4j.core.BadInputException.class, () -> gpu.forward(x, Mode.TRAINING));
            assertTrue(e.getMessage().contains("router jitter noise") && !e.getMessage().contains("\n"), e.getMessage());
        } finally {
            for (Parameter p : gpu.parameters()) {
                d.free(p.value());
            }
        }
    }
}
