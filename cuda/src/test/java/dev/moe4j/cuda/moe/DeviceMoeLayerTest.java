package dev.moe4j.cuda.moe;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceTensor;
import dev.moe4j.cuda.Gpu;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.router.TopKRouter;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static dev.moe4j.cuda.Gpu.bf16Normal;
import static dev.moe4j.cuda.Gpu.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The GPU MoE layer against the CPU's {@link MoeLayer} on the same weights and inputs (rounded to BF16 on both
 * sides): the same experts for every token, and output, input gradient and every weight gradient within BF16
 * tolerance (max|Δ| / max|ref| ≤ 1e-2; the GPU rounds its activations to BF16, the CPU keeps F32).
 */
class DeviceMoeLayerTest {
    private static final double TOLERANCE = 1e-2;

    static Map<String, MoeConfig> configs() {
        var out = new LinkedHashMap<String, MoeConfig>();
        out.put("mixtral (softmax, top-2 of 8, renormalised)", MoeConfig.builder(64, 96, 8, 2).normalizeTopK(true).build());
        out.put("qwen2-moe (softmax, top-4 of 16, not renormalised)", MoeConfig.builder(48, 40, 16, 4).build());
        out.put("deepseek-v3-like (sigmoid, selection bias, scaling 2.5)", MoeConfig.builder(64, 32, 12, 3)
                .scoring(Scoring.SIGMOID).normalizeTopK(true).selectionBias(true).routedScalingFactor(2.5).build());
        out.put("odd widths (no 16-byte rows: H 36, I 20)", MoeConfig.builder(36, 20, 6, 2).normalizeTopK(true).build());
        out.put("switch (top-1)", MoeConfig.builder(40, 24, 4, 1).build());
        out.put("qwen3-moe-like (top-8 of 128: experts over every lane of a warp)",
                MoeConfig.builder(64, 32, 128, 8).normalizeTopK(true).build());
        out.put("40 experts (not a multiple of a warp), top-3", MoeConfig.builder(32, 16, 40, 3).build());
        return out;
    }

    @Test
    void forwardAndBackwardMatchTheCpuLayerForEveryRoutingItRuns() {
        CudaDevice d = Gpu.device();
        int seed = 0;
        for (var entry : configs().entrySet()) {
            String name = entry.getKey();
            MoeConfig config = entry.getValue().toBuilder().seed(100 + seed).build();
            var random = new Random(200 + seed++);
            int tokens = 77;
            MoeLayer cpu = roundedLayer(config, random);
            Tensor x = bf16Normal(random, 1, tokens, config.hidden()), dOut = bf16Normal(random, 1, tokens, config.hidden());

            MoeResult r = cpu.forward(x, tokens, Mode.TRAINING);
            Tensor dx = cpu.backward(r.context(), dOut);

            try (DeviceMoeLayer gpu = DeviceMoeLayer.upload(d, cpu); DeviceTensor gx = d.upload(x, DType.BF16);
                 DeviceTensor gdOut = d.upload(dOut, DType.BF16);
                 DeviceMoeLayer.Pass pass = gpu.forward(gx, true)) {
                Tensor choices = pass.choice().toHost();
                int[] cpuChoices = r.routing().choices();
                for (int i = 0; i < cpuChoices.length; i++) {
                    assertEquals(cpuChoices[i], choices.getLong(i), name + ": expert of assignment " + i);
                }
                assertArrayEquals(r.routing().dispatch().offsets(), pass.offsets(), name + ": rows per expert");
                TensorAssert.assertClose(values(r.output()), pass.output().toHostF32(), TOLERANCE, name + ": output");
                try (DeviceTensor gdx = gpu.backward(pass, gdOut)) {
                    TensorAssert.assertClose(values(dx), gdx.toHostF32(), TOLERANCE, name + ": dL/dx");
                }
                TensorAssert.assertClose(values(grad(cpu, "router.weight")), gpu.routerGrad().toHost(), TOLERANCE,
                        name + ": router gradient");
                TensorAssert.assertClose(values(grad(cpu, "experts.gate_up_proj")), gpu.gateUpGrad().toHost(), TOLERANCE,
                        name + ": gate/up gradient");
                TensorAssert.assertClose(values(grad(cpu, "experts.down_proj")), gpu.downGrad().toHost(), TOLERANCE,
                        name + ": down gradient");
                pass.output().close();
            }
        }
    }

    @Test
    void gradientsAccumulateOverPassesUntilZeroed() {
        CudaDevice d = Gpu.device();
        MoeConfig config = MoeConfig.builder(32, 24, 4, 2).normalizeTopK(true).build();
        var random = new Random(5);
        MoeLayer cpu = roundedLayer(config, random);
        Tensor x = bf16Normal(random, 1, 20, 32), dOut = bf16Normal(random, 1, 20, 32);
        try (DeviceMoeLayer gpu = DeviceMoeLayer.upload(d, cpu); DeviceTensor gx = d.upload(x, DType.BF16);
             DeviceTensor gdOut = d.upload(dOut, DType.BF16)) {
            double[] once = null;
            for (int pass = 0; pass < 2; pass++) {
                try (DeviceMoeLayer.Pass p = gpu.forward(gx, true)) {
                    gpu.backward(p, gdOut).close();
                    p.output().close();
                }
                if (pass == 0) {
                    once = values(gpu.downGrad().toHost());
                }
            }
            double[] twice = values(gpu.downGrad().toHost());
            for (int i = 0; i < once.length; i++) {
                assertEquals(2 * once[i], twice[i], 1e-5 * (1 + Math.abs(twice[i])));
            }
            gpu.zeroGrad();
            for (double v : values(gpu.downGrad().toHost())) {
                assertEquals(0, v);
            }
        }
    }

    @Test
    void inferenceGivesTheTrainingOutputAndKeepsNothingForBackward() {
        CudaDevice d = Gpu.device();
        MoeConfig config = MoeConfig.builder(64, 48, 8, 2).normalizeTopK(true).build();
        var random = new Random(6);
        MoeLayer cpu = roundedLayer(config, random);
        Tensor x = bf16Normal(random, 1, 9, 64);
        try (DeviceMoeLayer gpu = DeviceMoeLayer.upload(d, cpu); DeviceTensor gx = d.upload(x, DType.BF16);
             DeviceMoeLayer.Pass training = gpu.forward(gx, true); DeviceMoeLayer.Pass inference = gpu.forward(gx, false)) {
            assertArrayEquals(training.output().toHost().toFloatArray(), inference.output().toHost().toFloatArray());
            assertThrows(IllegalStateException.class, () -> gpu.backward(inference, gx));
        }
    }

    @Test
    void smallInferenceBatchesTakeTheDecodingPathAndMatchTheCpuLayer() {
        CudaDevice d = Gpu.device();
        int seed = 0;
        for (var entry : configs().entrySet()) {
            MoeConfig config = entry.getValue().toBuilder().seed(300 + seed).build();
            var random = new Random(400 + seed++);
            MoeLayer cpu = roundedLayer(config, random);
            for (int tokens : new int[] {1, DeviceMoeLayer.SMALL_BATCH_TOKENS}) {
                String name = entry.getKey() + ", " + tokens + " token(s)";
                Tensor x = bf16Normal(random, 1, tokens, config.hidden());
                MoeResult r = cpu.forward(x, tokens, Mode.INFERENCE);
                try (DeviceMoeLayer gpu = DeviceMoeLayer.upload(d, cpu); DeviceTensor gx = d.upload(x, DType.BF16);
                     DeviceMoeLayer.Pass pass = gpu.forward(gx, false)) {
                    assertEquals(null, pass.offsets(), name + ": no permutation");
                    Tensor choices = pass.choice().toHost();
                    int[] cpuChoices = r.routing().choices();
                    for (int i = 0; i < cpuChoices.length; i++) {
                        assertEquals(cpuChoices[i], choices.getLong(i), name + ": expert of assignment " + i);
                    }
                    TensorAssert.assertClose(values(r.output()), pass.output().toHostF32(), TOLERANCE, name + ": output");
                    pass.output().close();
                }
            }
        }
    }

    @Test
    void optionsTheGpuLayerDoesNotRunAreListedByName() {
        MoeConfig config = MoeConfig.builder(16, 8, 4, 2).capacity(Capacity.switchFactor(1.25))
                .noise(Noise.jitter(0.01)).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.01).build();
        var missing = DeviceMoeLayer.unsupported(config);
        assertTrue(missing.contains("capacity") && missing.contains("router noise") && missing.contains("balance losses"),
                missing.toString());
        assertTrue(DeviceMoeLayer.unsupported(MoeConfig.builder(16, 8, 4, 2).normalizeTopK(true).build()).isEmpty());
    }

    /** A freshly initialised CPU layer with every weight (and the selection bias) rounded to BF16. */
    static MoeLayer roundedLayer(MoeConfig config, Random random) {
        MoeLayer layer = MoeLayer.initialize(config);
        for (Parameter p : layer.parameters()) {
            p.value().copyFrom(p.value().to(DType.BF16));
        }
        if (layer.router() instanceof TopKRouter r && r.selectionBias() != null) {
            Tensor b = r.selectionBias();
            for (int i = 0; i < b.size(); i++) {
                b.setFloat(i, (float) (0.05 * random.nextGaussian()));
            }
        }
        return layer;
    }

    static Tensor grad(MoeLayer layer, String name) {
        for (Parameter p : layer.parameters()) {
            if (p.name().equals(name)) {
                return p.grad();
            }
        }
        throw new AssertionError("no parameter " + name);
    }
}
