package dev.moe4j.model.generate;

import dev.moe4j.model.testing.ToyModel;
import dev.moe4j.model.testing.ToyText;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenLogprobTest {
    @Test
    void logprobsAreTheLogSoftmaxOfTheModelsLogitsWithTheBestAlternativesFirst() {
        float[] logits = {1, 3, 2, 3, -1};
        var l = TokenLogprob.of(logits, 2, 3);
        double logZ = Math.log(Math.exp(1) + 2 * Math.exp(3) + Math.exp(2) + Math.exp(-1));
        assertEquals(2 - logZ, l.logprob(), 1e-6);
        assertArrayEquals(new int[] {1, 3, 2}, l.topIds(), "ties to the lower id");
        assertEquals(3 - logZ, l.topLogprobs()[0], 1e-6);
        assertEquals(0, TokenLogprob.of(logits, 0, 0).topIds().length);
    }

    @Test
    void aGenerationRecordsItsTokensLogprobsBeforeTheSamplerChangesTheLogits() {
        var model = new ToyModel(64, 64, 2);
        // a repetition penalty changes the logits the sampler sees, not the logprobs reported
        var options = new GenerationOptions(5, SamplingConfig.greedy().withRepetitionPenalty(1.3), Set.of(), List.of(),
                null, false, 2);
        Generation g = new Generator(model, new ToyText()).generate(new int[] {1, 2}, options,
                dev.moe4j.model.generate.GenerationListener.NONE);
        assertEquals(g.outputIds().length, g.logprobs().size());
        for (int i = 0; i < g.outputIds().length; i++) {
            TokenLogprob l = g.logprobs().get(i);
            assertEquals(g.outputIds()[i], l.id());
            assertTrue(l.logprob() <= 0);
            assertEquals(2, l.topIds().length);
            assertTrue(l.topLogprobs()[0] >= l.logprob() && l.topLogprobs()[0] >= l.topLogprobs()[1]);
        }
        assertEquals(List.of(), new Generator(model, new ToyText()).generate(new int[] {1, 2},
                GenerationOptions.greedy(3, Set.of()), GenerationListener.NONE).logprobs());
    }
}
