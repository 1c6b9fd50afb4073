package dev.moe4j.train.parity;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.Gpu;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One training step of a Hugging Face checkpoint on the GPU equals transformers' float32 step within BF16's
 * tolerance: the loss (cross-entropy plus the balance loss over all layers) within 1e-2, and every parameter's
 * gradient within 1e-2 relative (max|Δ| / max|ref| per tensor), for the model's own passes and for the trainer that
 * {@code moe4j train --device cuda} runs (its gradients come back to the host's master weights).
 */
class GpuTrainStepParityTest {
    private static final double TOLERANCE = 1e-2;

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void gradientsOfOneStepOnTheGpuMatchTransformers(String name) {
        CudaDevice d = Gpu.device();
        var ref = new TrainStepReference(name);
        Transformer host = ModelLoader.loadForTraining(ref.folder);
        Transformer gpu = Transformer.placed(host.config(), host.weights(), d.backend(), true);
        Map<String, Parameter> named = TrainStepParityTest.named(gpu);
        try (var scope = MemoryScope.open()) {
            Graph g = Graph.training();
            ForwardPass pass = gpu.forward(g, ref.inputIds(), ref.sequences(), null);
            Transformer.Loss loss = gpu.loss(g, pass, ref.targets());
            assertEquals(ref.loss(), loss.total(), TOLERANCE * ref.loss(), name + " training loss on the GPU");
            g.backward(loss.objective());
        }
        check(name + " (model on the GPU)", TrainStepReference.inTransformersNames(named, v -> v.grad().toHost()), ref);
        for (Parameter p : named.values()) {
            d.free(p.value());
            if (p.hasGrad()) {
                d.free(p.grad());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void theTrainersStepOnTheGpuBringsTransformersGradientsToTheHost(String name) {
        CudaDevice d = Gpu.device();
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        var settings = new Trainer.Settings(LearningRateSchedule.constant(1e-2), 0, 1, 0, 1);
        var trainer = new Trainer(model, TrainStepParityTest.FIXTURE_ADAMW, AdamW.ALL, settings, d.backend());
        var batch = new BatchSampler.Batch(ref.inputIds(), ref.targets(), new int[ref.sequences()]);
        StepMetrics m = trainer.step((step, micro, micros) -> batch);
        assertEquals(ref.loss(), m.loss(), TOLERANCE * ref.loss(), name + " training loss");
        assertTrue(trainer.device().startsWith("cuda"), trainer.device());
        check(name + " (trainer)", TrainStepReference.inTransformersNames(trainer.parameters(), Var::grad), ref);
    }

    private static void check(String what, Map<String, Tensor> grads, TrainStepReference ref) {
        Map<String, Tensor> expected = ref.withPrefix("grad.");
        assertEquals(expected.keySet(), grads.keySet(), what + ": the same parameters");
        double worst = 0;
        for (var e : expected.entrySet()) {
            double[] want = Reference.values(e.getValue()), got = Reference.values(grads.get(e.getKey()));
            double error = TensorAssert.relativeError(want, got);
            worst = Math.max(worst, error);
            assertTrue(error <= TOLERANCE, what + " grad." + e.getKey() + ": relative error " + error);
        }
        System.out.printf("GPU train step %-28s %d gradients, worst relative error %.2e%n", what, expected.size(), worst);
    }
}
