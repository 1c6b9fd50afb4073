package dev.moe4j.train.parity;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.testing.Reference;
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

import java.util.LinkedHashMap;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One training step of a Hugging Face checkpoint equals transformers': the loss (cross-entropy plus
 * router_aux_loss_coef times the load-balancing loss over all layers' router logits at once), every parameter's
 * gradient within 1e-4 relative, and every parameter after one torch.optim.AdamW step within 1e-5.
 *
 * <p>One caveat is measured rather than hidden. Adam's first step moves a weight by lr·g/(|g| + ε), so where |g|
 * is near ε = 1e-8 a float32 rounding difference of 1e-10 in the gradient (which both implementations make, in
 * different orders) moves the update by up to 1e-4 (measured: 4 of the fixtures' 270k weights differ by more than
 * 1e-5, at most 3e-5, all with |g| below 1e-7). Where |g| is below 1e-6 the test checks instead that the
 * difference is exactly what the measured gradient difference implies; and AdamW fed transformers' own gradients
 * gives transformers' weights within 1e-6 everywhere.
 */
class TrainStepParityTest {
    static final double LR = 1e-2, EPS = 1e-8;
    static final AdamW.Hyper FIXTURE_ADAMW = new AdamW.Hyper(0.9, 0.95, EPS, 0.1);

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void oneStepMatchesTransformersGradientsAndAdamWUpdate(String name) {
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        Graph g = Graph.training();
        ForwardPass pass = model.forward(g, ref.inputIds(), ref.sequences(), null);
        Transformer.Loss loss = model.loss(g, pass, ref.targets());
        assertEquals(ref.loss(), loss.total(), 1e-5 * ref.loss(), name + " training loss");
        g.backward(loss.objective());

        Map<String, Parameter> named = named(model);
        Map<String, Tensor> grads = TrainStepReference.inTransformersNames(named, Var::grad);
        Map<String, Tensor> expectedGrads = ref.withPrefix("grad.");
        assertEquals(expectedGrads.keySet(), grads.keySet(), name + ": the same parameters");
        expectedGrads.forEach((n, expected) ->
                assertClose(Reference.values(expected), grads.get(n), 1e-4, name + " grad." + n));
        // Keep our gradients: the step below must be explained by them.
        var ours = new LinkedHashMap<String, double[]>();
        grads.forEach((n, t) -> ours.put(n, Reference.values(t)));

        new AdamW(named, FIXTURE_ADAMW, AdamW.ALL).step(LR);
        Map<String, Tensor> weights = TrainStepReference.inTransformersNames(named, Var::value);
        ref.withPrefix("after_step.").forEach((n, expected) -> {
            double[] e = Reference.values(expected), a = Reference.values(weights.get(n));
            double[] gRef = Reference.values(expectedGrads.get(n)), gOurs = ours.get(n);
            for (int i = 0; i < e.length; i++) {
                double diff = a[i] - e[i];
                if (Math.abs(gRef[i]) >= 1e-6) {
                    assertEquals(0, diff, 1e-5, name + " after_step." + n + "[" + i + "]");
                } else {
                    double implied = firstStep(gRef[i]) - firstStep(gOurs[i]);
                    assertEquals(implied, diff, 1e-6, name + " after_step." + n + "[" + i + "], |g| = " + gRef[i]);
                }
            }
        });
    }

    /**
     * The trainer itself, configured as the fixture was trained (constant learning rate, no warmup, no clipping,
     * decay of every parameter), takes the same step: fine-tuning starts where transformers would.
     */
    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void theTrainersFirstFineTuningStepIsTransformersStep(String name) {
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        var settings = new Trainer.Settings(LearningRateSchedule.constant(LR), 0, 1, 0, 1);
        var trainer = new Trainer(model, FIXTURE_ADAMW, AdamW.ALL, settings);
        var batch = new BatchSampler.Batch(ref.inputIds(), ref.targets(), new int[ref.sequences()]);
        StepMetrics m = trainer.step((step, micro, micros) -> batch);
        assertEquals(ref.loss(), m.loss(), 1e-5 * ref.loss(), name + " training loss");
        assertEquals(LR, m.lr());
        Map<String, Tensor> expectedGrads = ref.withPrefix("grad.");
        Map<String, Tensor> weights = TrainStepReference.inTransformersNames(trainer.parameters(), Var::value);
        ref.withPrefix("after_step.").forEach((n, expected) -> {
            double[] e = Reference.values(expected), a = Reference.values(weights.get(n));
            double[] g = Reference.values(expectedGrads.get(n));
            for (int i = 0; i < e.length; i++) {
                if (Math.abs(g[i]) >= 1e-6) {
                    assertEquals(e[i], a[i], 1e-5, name + " after_step." + n + "[" + i + "]");
                }
            }
        });
    }

    /**
     * The balance loss over all layers is not a rounding detail: without it (cross-entropy alone) the router
     * gradients miss transformers' by far more than the tolerance, so the parity above checks its backward step.
     */
    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void withoutTheBalanceLossTheRouterGradientsWouldDiffer(String name) {
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        Graph g = Graph.training();
        ForwardPass pass = model.forward(g, ref.inputIds(), ref.sequences(), null);
        g.backward(g.crossEntropy(pass.logits(), ref.targets()));
        Map<String, Tensor> grads = TrainStepReference.inTransformersNames(named(model), Var::grad);
        String router = "model.layers.0.mlp.gate.weight";
        double error = dev.moe4j.core.testing.TensorAssert.relativeError(
                Reference.values(ref.withPrefix("grad.").get(router)), Reference.values(grads.get(router)));
        assertTrue(error > 1e-2, name + ": the balance loss moves the router gradient by " + error);
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void adamWOnTransformersGradientsGivesTransformersWeights(String name) {
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        Map<String, Parameter> named = named(model);
        Map<String, Tensor> expectedGrads = ref.withPrefix("grad.");
        TrainStepReference.inTransformersNames(named, Var::grad).forEach((n, grad) -> grad.copyFrom(expectedGrads.get(n)));
        new AdamW(named, FIXTURE_ADAMW, AdamW.ALL).step(LR);
        Map<String, Tensor> weights = TrainStepReference.inTransformersNames(named, Var::value);
        ref.withPrefix("after_step.").forEach((n, expected) -> {
            double[] e = Reference.values(expected), a = Reference.values(weights.get(n));
            for (int i = 0; i < e.length; i++) {
                assertTrue(Math.abs(e[i] - a[i]) <= 1e-6, name + " after_step." + n + "[" + i + "]: " + a[i] + " vs " + e[i]);
            }
        });
    }

    /** The first AdamW step without decay: m̂ = g and v̂ = g², so lr · g / (|g| + ε). */
    private static double firstStep(double g) {
        return LR * g / (Math.abs(g) + EPS);
    }

    static Map<String, Parameter> named(Transformer model) {
        var named = new LinkedHashMap<String, Parameter>();
        model.parameters().forEach((n, v) -> named.put(n, (Parameter) v));
        return named;
    }
}
