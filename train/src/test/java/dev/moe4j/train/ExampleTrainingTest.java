package dev.moe4j.train;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.train.data.BatchSampler.Batch;
import dev.moe4j.train.data.Example;
import dev.moe4j.train.data.ExampleBatches;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static dev.moe4j.core.testing.TensorAssert.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training on whole examples: padding changes nothing that the examples compute, the loss is the mean over every
 * labelled token (float64 reference), and gradient accumulation gives the gradient of the whole batch however the
 * labelled tokens fall into micro-batches.
 */
class ExampleTrainingTest {
    static final int I = Graph.IGNORE;
    /** 2 labelled tokens of 6. */
    static final Example SHORT = new Example("short", new int[] {3, 4, 5, 6, 7, 8}, new int[] {I, I, I, I, 7, 8});
    /** 9 labelled tokens of 11. */
    static final Example LONG = new Example("long", new int[] {9, 3, 12, 5, 14, 7, 3, 10, 4, 11, 6},
            new int[] {9, 3, 12, I, 14, 7, 3, 10, 4, 11, 6});

    /** A moe4j model without balance losses: its loss is the cross-entropy alone, linear in the tokens. */
    static Trainer trainer(int microSteps) {
        var settings = new Trainer.Settings(LearningRateSchedule.constant(0), 0, microSteps, 0, 1);
        return new Trainer(Transformer.initialize(TrainerTest.tiny(0), 3), AdamW.Hyper.pytorchDefaults(),
                AdamW.MATRICES_ONLY, settings);
    }

    static Map<String, double[]> gradients(Trainer t) {
        var out = new java.util.LinkedHashMap<String, double[]>();
        t.parameters().forEach((n, p) -> out.put(n, Reference.values(p.grad())));
        return out;
    }

    @Test
    void thePaddedBatchsLossIsTheMeanOverItsLabelledTokensAndItsGradientThatOfTheExamplesAlone() {
        Trainer both = trainer(1);
        Batch batch = ExampleBatches.evaluationBatches(List.of(SHORT, LONG), 2, 1).getFirst();
        StepMetrics m = both.step((s, micro, n) -> batch);

        // float64 reference of the loss from the padded batch's logits
        Transformer model = Transformer.initialize(TrainerTest.tiny(0), 3);
        Tensor logits = model.forward(Graph.inference(), batch.inputs(), 2, null).logits().value();
        double sum = 0;
        int counted = 0;
        for (int r = 0; r < batch.targets().length; r++) {
            if (batch.targets()[r] == I) {
                continue;
            }
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int c = 0; c < TrainerTest.VOCAB; c++) {
                max = Math.max(max, logits.get(r, c));
            }
            for (int c = 0; c < TrainerTest.VOCAB; c++) {
                z += Math.exp(logits.get(r, c) - max);
            }
            sum += max + Math.log(z) - logits.get(r, batch.targets()[r]);
            counted++;
        }
        assertEquals(SHORT.lossTokens() + LONG.lossTokens(), counted);
        assertEquals(sum / counted, m.crossEntropy(), 1e-6 * sum / counted);
        assertEquals(SHORT.length() + LONG.length(), m.tokens(), "padding is not counted as tokens");

        // each example alone, unpadded, weighted by its labelled tokens
        Trainer shortAlone = trainer(1), longAlone = trainer(1);
        shortAlone.step((s, micro, n) -> ExampleBatches.evaluationBatches(List.of(SHORT), 1, 1).getFirst());
        longAlone.step((s, micro, n) -> ExampleBatches.evaluationBatches(List.of(LONG), 1, 1).getFirst());
        double ws = (double) SHORT.lossTokens() / counted, wl = (double) LONG.lossTokens() / counted;
        var gs = gradients(shortAlone);
        var gl = gradients(longAlone);
        gradients(both).forEach((name, g) -> {
            double[] expected = new double[g.length];
            for (int i = 0; i < g.length; i++) {
                expected[i] = ws * gs.get(name)[i] + wl * gl.get(name)[i];
            }
            assertClose(expected, g, 1e-5, name);
        });
    }

    @Test
    void accumulatedMicroBatchesWeighTheirLabelledTokensSoTheStepIsTheWholeBatchs() {
        Trainer whole = trainer(1), accumulated = trainer(2);
        Batch batch = ExampleBatches.evaluationBatches(List.of(SHORT, LONG), 2, 1).getFirst();
        List<Batch> halves = ExampleBatches.evaluationBatches(List.of(SHORT, LONG), 1, 2);
        StepMetrics mw = whole.step((s, micro, n) -> batch);
        StepMetrics ma = accumulated.step((s, micro, n) -> halves.get(micro));
        assertEquals(mw.crossEntropy(), ma.crossEntropy(), 1e-6 * mw.crossEntropy());
        var ga = gradients(accumulated);
        gradients(whole).forEach((name, g) -> assertClose(g, ga.get(name), 1e-5, name));

        // Weighing each micro-batch 1/M instead would be another loss: the two examples' means differ, and so do
        // their numbers of labelled tokens (2 and 9).
        Trainer shortAlone = trainer(1), longAlone = trainer(1);
        double meanOfMeans = (shortAlone.step((s, micro, n) -> halves.get(0)).crossEntropy()
                + longAlone.step((s, micro, n) -> halves.get(1)).crossEntropy()) / 2;
        assertTrue(Math.abs(meanOfMeans - mw.crossEntropy()) > 1e-3 * mw.crossEntropy(),
                meanOfMeans + " vs " + mw.crossEntropy());
    }

    /**
     * transformers leaves padding out of its load-balancing loss (load_balancing_loss_func under the attention
     * mask); so does moe4j: a sequence followed by padding has the balance loss and router gradients of the
     * sequence alone, and counting the padding would change them.
     */
    @Test
    void theBalanceLossOfAHuggingFaceModelLeavesPaddingOut() {
        Path folder = fixture("qwen2-moe");
        int[] tokens = {17, 300, 45, 9, 250, 81, 4, 133};
        int[] padded = Arrays.copyOf(tokens, tokens.length + 5); // padding: id 0
        boolean[] real = new boolean[padded.length];
        Arrays.fill(real, 0, tokens.length, true);

        var alone = balance(ModelLoader.loadForTraining(folder), tokens, null);
        var masked = balance(ModelLoader.loadForTraining(folder), padded, real);
        var counted = balance(ModelLoader.loadForTraining(folder), padded, null);
        assertEquals(alone.loss(), masked.loss(), 1e-6 * alone.loss());
        assertTrue(Math.abs(alone.loss() - counted.loss()) > 1e-4 * alone.loss(), "the padding would count");
        alone.routerGrads().forEach((name, g) -> {
            assertClose(g, masked.routerGrads().get(name), 1e-5, name);
            assertTrue(relativeError(g, counted.routerGrads().get(name)) > 1e-3, name + ": the padding would count");
        });
    }

    record Balance(double loss, Map<String, double[]> routerGrads) {
    }

    private static Balance balance(Transformer model, int[] tokens, boolean[] real) {
        Graph g = Graph.training();
        ForwardPass pass = model.forward(g, tokens, 1, null);
        Var loss = model.balanceLoss(g, pass, real);
        g.backward(loss);
        var grads = new java.util.LinkedHashMap<String, double[]>();
        model.parameters().forEach((name, v) -> {
            if (name.endsWith("router.weight")) {
                grads.put(name, Reference.values(((Parameter) v).grad()));
            }
        });
        assertTrue(!grads.isEmpty());
        return new Balance(loss.value().getFloat(0), grads);
    }

    static Path fixture(String name) {
        try {
            return Path.of(ExampleTrainingTest.class.getClassLoader().getResource("fixtures/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}
