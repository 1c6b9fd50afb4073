package dev.moe4j.train.parity;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.Gpu;
import dev.moe4j.cuda.TransformersBf16;
import dev.moe4j.cuda.Precision;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One training step of a Hugging Face checkpoint on the GPU equals transformers' float32 step within BF16's
 * tolerance: the loss (cross-entropy plus the balance loss over all layers) within 1e-2, and every parameter's
 * gradient within 3e-2 relative (max|Δ| / max|ref| per tensor), for the model's own passes and for the trainer that
 * {@code moe4j train --device cuda} runs (its gradients come back to the host's master weights). Both route every
 * token to the experts the CPU chooses in F32 (see {@link #routeAsTheCpu}): a near-tie that BF16 activations flip
 * changes that token's experts, and no rounding tolerance covers that. Beside transformers, each gradient is also
 * measured against the same step on the CPU in F32 from the GPU's BF16-rounded weights, which splits a miss into
 * what the weights' rounding and what the GPU's arithmetic contribute (reported, not a second bound).
 *
 * <p>Why 3e-2 and not 1e-2 for BF16 gradients: BF16 itself does not reach 1e-2 on these fixtures. Rounding only the
 * weights to BF16 (F32 arithmetic, on the CPU) already puts 5 of qwen2-moe's gradients beyond it, and transformers'
 * own BF16 step misses it too ({@link TransformersBf16}: under autocast mixtral's worst gradient is 1.5e-2 with 5 of
 * 21 beyond 1e-2, qwen2-moe's 1.8e-1 with 44 of 47). The GPU measured 1.56e-2 and 2.58e-2. Whoever needs 1e-2 trains
 * in F32 precision, held to 1e-4 below.
 *
 * <p>In {@link Precision#F32} the same two steps are held to the float32 standard the CPU meets (TrainStepParityTest):
 * the loss within 1e-5 and every gradient within 1e-4 relative, with every token routed as the CPU routes it on its
 * own (no near-tie hand-over: F32 activations leave routing nothing to flip); each gradient's distance from the
 * CPU's own F32 step is reported beside it.
 */
class GpuTrainStepParityTest {
    private static final double TOLERANCE = 1e-2;
    /** Gradients in BF16 precision (see the class comment for why not {@link #TOLERANCE}). */
    private static final double BF16_GRADIENTS = 3e-2;
    /** Gradients in F32 precision: the bound the CPU's step meets against the same references. */
    private static final double FLOAT32 = 1e-4;
    /** The loss in F32 precision, as for the CPU. */
    private static final double FLOAT32_LOSS = 1e-5;
    private static final String SAME_WEIGHTS = "the same BF16 weights on the CPU";
    private static final String CPU_F32 = "the CPU's F32 step";

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void gradientsOfOneStepOnTheGpuMatchTransformers(String name) {
        CudaDevice d = Gpu.device();
        var ref = new TrainStepReference(name);
        Transformer host = ModelLoader.loadForTraining(ref.folder);
        Transformer gpu = Transformer.placed(host.config(), host.weights(), d.backend(), true);
        List<int[]> choices = routeAsTheCpu(name, host, gpu, gpu.moeLayers(), ref);
        check(name + " (model on the GPU)", stepOnTheGpu(d, gpu, ref, TOLERANCE, name + " training loss on the GPU"),
                ref, BF16_GRADIENTS, SAME_WEIGHTS, sameWeightsGradients(ref, d, choices), transformersBf16(name));
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
        List<int[]> choices = routeAsTheCpu(name, model,
                Transformer.placed(model.config(), model.weights(), d.backend(), false), trainer.moeLayers(), ref);
        StepMetrics m = trainer.step((step, micro, micros) -> batch);
        assertEquals(ref.loss(), m.loss(), TOLERANCE * ref.loss(), name + " training loss");
        assertTrue(trainer.device().startsWith("cuda"), trainer.device());
        check(name + " (trainer)", TrainStepReference.inTransformersNames(trainer.parameters(), Var::grad), ref,
                BF16_GRADIENTS, SAME_WEIGHTS, sameWeightsGradients(ref, d, choices), transformersBf16(name));
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void inF32PrecisionGradientsOfOneStepOnTheGpuMatchTransformersToFloat32Accuracy(String name) {
        CudaDevice d = Gpu.device(Precision.F32);
        var ref = new TrainStepReference(name);
        Transformer host = ModelLoader.loadForTraining(ref.folder);
        Transformer gpu = Transformer.placed(host.config(), host.weights(), d.backend(), true);
        requireTheCpusRouting(name + " (model on the GPU, f32)", host, gpu, ref);
        check(name + " (model on the GPU, f32)", stepOnTheGpu(d, gpu, ref, FLOAT32_LOSS,
                name + " training loss on the GPU in F32"), ref, FLOAT32, CPU_F32, cpuGradients(ref), "");
    }

    /**
     * One forward and backward pass of {@code gpu} on the fixture, its loss checked within {@code lossTolerance}
     * (relative); returns the gradients on the host in transformers' names and frees the model's device memory.
     */
    private static Map<String, Tensor> stepOnTheGpu(CudaDevice d, Transformer gpu, TrainStepReference ref,
                                                    double lossTolerance, String what) {
        Map<String, Parameter> named = TrainStepParityTest.named(gpu);
        try (var scope = MemoryScope.open()) {
            Graph g = Graph.training();
            ForwardPass pass = gpu.forward(g, ref.inputIds(), ref.sequences(), null);
            Transformer.Loss loss = gpu.loss(g, pass, ref.targets());
            assertEquals(ref.loss(), loss.total(), lossTolerance * ref.loss(), what);
            g.backward(loss.objective());
        }
        Map<String, Tensor> grads = TrainStepReference.inTransformersNames(named, v -> v.grad().toHost());
        for (Parameter p : named.values()) {
            d.free(p.value());
            if (p.hasGrad()) {
                d.free(p.grad());
            }
        }
        return grads;
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe"})
    void inF32PrecisionTheTrainersStepOnTheGpuBringsTransformersGradientsToTheHost(String name) {
        CudaDevice d = Gpu.device(Precision.F32);
        var ref = new TrainStepReference(name);
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        var settings = new Trainer.Settings(LearningRateSchedule.constant(1e-2), 0, 1, 0, 1);
        var trainer = new Trainer(model, TrainStepParityTest.FIXTURE_ADAMW, AdamW.ALL, settings, d.backend());
        var batch = new BatchSampler.Batch(ref.inputIds(), ref.targets(), new int[ref.sequences()]);
        requireTheCpusRouting(name + " (trainer, f32)", model,
                Transformer.placed(model.config(), model.weights(), d.backend(), false), ref);
        StepMetrics m = trainer.step((step, micro, micros) -> batch);
        assertEquals(ref.loss(), m.loss(), FLOAT32_LOSS * ref.loss(), name + " training loss in F32");
        assertTrue(trainer.device().startsWith("cuda"), trainer.device());
        check(name + " (trainer, f32)", TrainStepReference.inTransformersNames(trainer.parameters(), Var::grad), ref,
                FLOAT32, CPU_F32, cpuGradients(ref), "");
    }

    /**
     * Checks that {@code gpu} (in F32) routes every token of the fixture to the experts the CPU chooses, with no
     * hand-over: a token routed elsewhere fails, its message saying whether it is a near-tie.
     */
    private static void requireTheCpusRouting(String what, Transformer host, Transformer gpu, TrainStepReference ref) {
        RoutingComparison c = compareRouting(host, gpu, ref);
        System.out.printf("GPU train step %-28s %d of %d routings differ from the CPU's; router logits within %.1e of "
                + "the CPU's%s%n", what, c.flips().size(), c.routings(), c.worstDrift(),
                c.flips().isEmpty() ? "" : " " + c.flips());
        assertTrue(c.flips().isEmpty(), what + ": in F32 the GPU routes tokens elsewhere than the CPU: " + c.flips());
    }

    /** A token whose experts differ on the GPU: its CPU's k-th and (k+1)-th router logits' gap, and the GPU's drift. */
    private record Flip(int layer, int token, double gap, double drift) {
        boolean nearTie() {
            return gap < drift;
        }

        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "layer %d token %d (gap %.1e, drift %.1e: %s)", layer, token,
                    gap, drift, nearTie() ? "a near-tie" : "not a near-tie");
        }
    }

    /** How the GPU's routing of the fixture differs from the CPU's: routings compared, worst logit drift, flips. */
    private record RoutingComparison(List<MoeResult> cpu, int routings, double worstDrift, List<Flip> flips) {
    }

    /**
     * Routes the fixture on the CPU and on {@code gpu} and lists every token whose set of experts differs, with the
     * CPU's gap between its k-th and (k+1)-th router logits and how far the GPU's router logits drift from the CPU's.
     */
    private static RoutingComparison compareRouting(Transformer host, Transformer gpu, TrainStepReference ref) {
        List<MoeResult> cpu = host.forward(Graph.inference(), ref.inputIds(), ref.sequences(), null).moe();
        var flips = new java.util.ArrayList<Flip>();
        int routings = 0;
        double worstDrift = 0;
        try (var scope = MemoryScope.open()) {
            List<MoeResult> own = gpu.forward(Graph.inference(), ref.inputIds(), ref.sequences(), null).moe();
            for (int l = 0; l < cpu.size(); l++) {
                Routing want = cpu.get(l).routing(), got = own.get(l).routing();
                int e = want.experts(), k = want.k();
                for (int t = 0; t < want.tokens(); t++, routings++) {
                    float[] mine = Arrays.copyOfRange(want.logits(), t * e, t * e + e);
                    float[] theirs = Arrays.copyOfRange(got.logits(), t * e, t * e + e);
                    double drift = 0;
                    for (int i = 0; i < e; i++) {
                        drift = Math.max(drift, Math.abs(mine[i] - theirs[i]));
                    }
                    worstDrift = Math.max(worstDrift, drift);
                    int[] a = Arrays.copyOfRange(want.choices(), t * k, t * k + k);
                    int[] b = Arrays.copyOfRange(got.choices(), t * k, t * k + k);
                    Arrays.sort(a);
                    Arrays.sort(b);
                    if (!Arrays.equals(a, b)) {
                        float[] sorted = mine.clone();
                        Arrays.sort(sorted);
                        flips.add(new Flip(l, t, sorted[e - k] - sorted[e - k - 1], drift));
                    }
                }
            }
        }
        return new RoutingComparison(cpu, routings, worstDrift, flips);
    }

    /** The gradients of the same step on the CPU in F32 from the checkpoint's own weights, routed as it routes. */
    private static Map<String, Tensor> cpuGradients(TrainStepReference ref) {
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        Map<String, Parameter> named = TrainStepParityTest.named(model);
        Graph g = Graph.training();
        ForwardPass pass = model.forward(g, ref.inputIds(), ref.sequences(), null);
        g.backward(model.loss(g, pass, ref.targets()).objective());
        return TrainStepReference.inTransformersNames(named, Var::grad);
    }

    /**
     * Hands {@code layers} (on the GPU) the experts the CPU chooses for the fixture in F32, as transformers does, so
     * that the gradients compare the GPU's arithmetic under the same routing. Before that it checks that every token
     * {@code gpu} would route elsewhere is a near-tie: the CPU's k-th and (k+1)-th router logits are closer than the
     * GPU's router logits of that token drift from the CPU's (BF16 activations). A flipped near-tie changes a token's
     * experts, hence the loss, by far more than rounding; anything else the GPU chose differently fails here.
     */
    private static List<int[]> routeAsTheCpu(String name, Transformer host, Transformer gpu, List<MoeLayer> layers,
                                             TrainStepReference ref) {
        RoutingComparison c = compareRouting(host, gpu, ref);
        for (Flip f : c.flips()) {
            assertTrue(f.nearTie(), name + ": " + f + " routes elsewhere on the GPU");
        }
        List<int[]> choices = c.cpu().stream().map(m -> m.routing().choices().clone()).toList();
        fixChoices(layers, choices);
        System.out.printf("GPU train step %-28s %d of %d routings are near-ties the GPU flips; the step routes as the "
                + "CPU%n", name, c.flips().size(), c.routings());
        return choices;
    }

    private static void fixChoices(List<MoeLayer> layers, List<int[]> choices) {
        for (int l = 0; l < layers.size(); l++) {
            ((TopKRouter) layers.get(l).router()).fixChoices(choices.get(l));
        }
    }

    /**
     * The gradients of the same step on the CPU in F32 from the weights the GPU computes with (its matrices rounded
     * to BF16, routers F32), routed as {@code choices}: what the GPU's arithmetic would reproduce exactly.
     */
    private static Map<String, Tensor> sameWeightsGradients(TrainStepReference ref, CudaDevice d, List<int[]> choices) {
        Transformer model = ModelLoader.loadForTraining(ref.folder);
        Map<String, Parameter> named = TrainStepParityTest.named(model);
        named.forEach((n, p) -> {
            if (Transformer.placedType(n, p.value().rank(), d.backend()) == DType.BF16) {
                p.value().copyFrom(p.value().to(DType.BF16));
            }
        });
        fixChoices(model.moeLayers(), choices);
        Graph g = Graph.training();
        ForwardPass pass = model.forward(g, ref.inputIds(), ref.sequences(), null);
        g.backward(model.loss(g, pass, ref.targets()).objective());
        return TrainStepReference.inTransformersNames(named, Var::grad);
    }

    /**
     * Every gradient within {@code bound} of transformers'; each is also measured against a CPU step ({@code beside}:
     * the same BF16 weights' step, or the CPU's own F32 step), which the printed line and each miss report together
     * with that step's own distance from transformers, so that a miss shows what the GPU's arithmetic adds.
     */
    private static void check(String what, Map<String, Tensor> grads, TrainStepReference ref, double bound,
                              String beside, Map<String, Tensor> besideGrads, String note) {
        Map<String, Tensor> expected = ref.withPrefix("grad.");
        assertEquals(expected.keySet(), grads.keySet(), what + ": the same parameters");
        double worst = 0, worstVsBeside = 0, worstBeside = 0;
        String worstName = "", worstVsBesideName = "";
        var failures = new java.util.ArrayList<String>();
        for (var e : expected.entrySet()) {
            String n = e.getKey();
            double[] want = Reference.values(e.getValue()), got = Reference.values(grads.get(n));
            double[] other = Reference.values(besideGrads.get(n));
            double error = TensorAssert.relativeError(want, got), vsBeside = TensorAssert.relativeError(other, got);
            double besideError = TensorAssert.relativeError(want, other);
            worstBeside = Math.max(worstBeside, besideError);
            if (error > worst) {
                worst = error;
                worstName = n;
            }
            if (vsBeside > worstVsBeside) {
                worstVsBeside = vsBeside;
                worstVsBesideName = n;
            }
            if (error > bound) {
                failures.add(String.format(java.util.Locale.ROOT, "grad.%s: %.3e from transformers, %.3e from %s "
                        + "(which is %.3e from transformers)", n, error, vsBeside, beside, besideError));
            }
        }
        System.out.printf("GPU train step %-28s %d gradients, worst relative error %.2e (%s) from transformers (bound "
                        + "%.0e); %.2e (%s) from %s, whose own worst is %.2e%s%n", what, expected.size(), worst,
                worstName, bound, worstVsBeside, worstVsBesideName, beside, worstBeside, note);
        assertTrue(failures.isEmpty(), what + ": " + failures);
    }

    /** What transformers' own BF16 step reaches on a fixture, for the printed line. */
    private static String transformersBf16(String fixture) {
        return String.format(java.util.Locale.ROOT, "; transformers' own BF16 step: worst %.2e, %s beyond 1e-2 under "
                + "autocast", TransformersBf16.worstGradientError(fixture), TransformersBf16.autocastGradientsBeyond1e2(fixture));
    }
}
