package dev.moe4j.train;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.data.TokenStream;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {
    static final int VOCAB = 16;

    static ModelConfig tiny(double balance) {
        var moe = MoeConfig.builder(16, 24, 4, 2).normalizeTopK(true);
        if (balance > 0) {
            moe.loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), balance);
        }
        return ModelConfig.builder().vocabSize(VOCAB).hiddenSize(16).attention(AttentionConfig.Standard.of(2, 1, 8))
                .moeLayers(2).moe(moe.build()).maxPositions(64).build();
    }

    /** A stream with structure to learn: a repeating pattern of 7 tokens. */
    static TokenStream pattern(int length) {
        int[] tokens = new int[length];
        for (int i = 0; i < length; i++) {
            tokens[i] = (i * 5) % 7 + 3;
        }
        return new TokenStream(tokens, new int[] {0}, List.of("pattern"));
    }

    static Trainer trainer(ModelConfig config, int microSteps, double lr) {
        var settings = new Trainer.Settings(LearningRateSchedule.warmupCosine(lr, 2, 40), 1.0, microSteps, 0, 1);
        return new Trainer(Transformer.initialize(config, 3), new AdamW.Hyper(0.9, 0.95, 1e-8, 0.01),
                AdamW.MATRICES_ONLY, settings);
    }

    @Test
    void theLossFallsOnDataWithStructure() {
        Trainer t = trainer(tiny(0.01), 1, 1e-2);
        var sampler = new BatchSampler(pattern(2000), 4, 16, 1, true);
        double first = t.step(sampler::batch).crossEntropy();
        double last = first;
        for (int i = 1; i < 40; i++) {
            last = t.step(sampler::batch).crossEntropy();
        }
        assertTrue(last < first / 3, "cross-entropy fell from " + first + " to " + last);
        assertEquals(40, t.steps());
    }

    @Test
    void accumulatingHalfBatchesGivesTheGradientOfTheWholeBatch() {
        // Without balance losses (which are not linear in the batch) the loss is a mean over equal halves.
        var whole = new BatchSampler(pattern(500), 4, 12, 5, true).batch(0, 0, 1);
        int half = whole.inputs().length / 2;
        var first = new BatchSampler.Batch(Arrays.copyOf(whole.inputs(), half), Arrays.copyOf(whole.targets(), half),
                Arrays.copyOf(whole.starts(), 2));
        var second = new BatchSampler.Batch(Arrays.copyOfRange(whole.inputs(), half, 2 * half),
                Arrays.copyOfRange(whole.targets(), half, 2 * half), Arrays.copyOfRange(whole.starts(), 2, 4));
        Trainer a = trainer(tiny(0), 1, 0), b = trainer(tiny(0), 2, 0);
        StepMetrics ma = a.step((s, m, n) -> whole);
        StepMetrics mb = b.step((s, m, n) -> m == 0 ? first : second);
        assertEquals(ma.crossEntropy(), mb.crossEntropy(), 1e-6);
        assertEquals(ma.gradNorm(), mb.gradNorm(), 1e-5 * ma.gradNorm());
        Map<String, Parameter> pa = a.parameters(), pb = b.parameters();
        pa.forEach((name, p) -> assertClose(values(p.grad()), pb.get(name).grad(), 1e-5, name));
    }

    @Test
    void theSameSeedGivesTheSameRunBitForBit() {
        double[][] losses = new double[2][];
        float[][] weights = new float[2][];
        for (int run = 0; run < 2; run++) {
            Trainer t = trainer(tiny(0.01), 2, 5e-3);
            var sampler = new BatchSampler(pattern(800), 3, 10, 9, true);
            losses[run] = new double[6];
            for (int i = 0; i < 6; i++) {
                losses[run][i] = t.step(sampler::batch).loss();
            }
            weights[run] = t.parameters().get("layers.1.moe.experts.down_proj").value().toFloatArray();
        }
        assertArrayEquals(losses[0], losses[1]);
        assertArrayEquals(weights[0], weights[1]);
    }

    @Test
    void routingMetricsCoverEveryMoeLayerAndItsTokens() {
        Trainer t = trainer(tiny(0.01), 2, 1e-3);
        var sampler = new BatchSampler(pattern(300), 2, 8, 1, true);
        StepMetrics m = t.step(sampler::batch);
        assertEquals(2, m.routing().size());
        for (StepMetrics.LayerRouting r : m.routing()) {
            // 2 micro-batches × 16 tokens × top-2, all served (dropless)
            assertEquals(64, Arrays.stream(r.tokensPerExpert()).sum());
            assertEquals(0, r.dropped());
        }
        assertEquals(32, m.tokens());
        assertTrue(m.auxiliary() > 0 && m.loss() > m.crossEntropy());
    }

    static double[] values(Tensor t) {
        double[] out = new double[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }
}
