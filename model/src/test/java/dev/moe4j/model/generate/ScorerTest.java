package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.testing.ToyModel;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Scoring against log-softmax computed directly, in double precision, from the toy model's logits. */
class ScorerTest {
    private static final int VOCAB = 64;

    /** log p(ids[t+1] | ids[..t]) computed naively from the toy's logit function. */
    private static double expectedLogProb(ToyModel model, int[] ids, int t) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < VOCAB; v++) {
            max = Math.max(max, model.logit(ids[t], t, v));
        }
        double sum = 0;
        for (int v = 0; v < VOCAB; v++) {
            sum += Math.exp(model.logit(ids[t], t, v) - max);
        }
        return model.logit(ids[t], t, ids[t + 1]) - max - Math.log(sum);
    }

    private static int[] sequence(int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = (i * 13 + 5) % VOCAB;
        }
        return ids;
    }

    @Test
    void eachTokenIsScoredByTheLogSoftmaxAtThePreviousPosition() {
        var model = new ToyModel(VOCAB, 64, 1);
        int[] ids = sequence(10);
        var scores = new Scorer(model).score(ids, null);
        assertEquals(9, scores.logProbs().length);
        double nll = 0;
        for (int t = 0; t < 9; t++) {
            double expected = expectedLogProb(model, ids, t);
            assertEquals(expected, scores.logProbs()[t], 1e-5, "token " + (t + 1));
            nll -= expected;
        }
        assertEquals(Math.exp(nll / 9), scores.perplexity(), 1e-4);
    }

    @Test
    void aTextLongerThanOneChunkScoresAsIfFedAtOnce() {
        int n = Scorer.CHUNK + 40;
        var model = new ToyModel(VOCAB, 1024, 1);
        int[] ids = sequence(n);
        var scores = new Scorer(model).score(ids, null);
        assertEquals(2, model.calls.size(), "two chunks");
        for (int t : new int[] {0, Scorer.CHUNK - 2, Scorer.CHUNK - 1, Scorer.CHUNK, n - 2}) {
            assertEquals(expectedLogProb(model, ids, t), scores.logProbs()[t], 1e-5, "token " + (t + 1));
        }
    }

    @Test
    void theGreedyChainIsMoreLikelyThanNoise() {
        var model = new ToyModel(VOCAB, 64, 1);
        int[] chain = new int[12];
        chain[0] = 1;
        for (int i = 1; i < chain.length; i++) {
            chain[i] = model.successor(chain[i - 1]);
        }
        double chainPerplexity = new Scorer(model).score(chain, null).perplexity();
        double noisePerplexity = new Scorer(model).score(sequence(12), null).perplexity();
        assertTrue(chainPerplexity < noisePerplexity, chainPerplexity + " vs " + noisePerplexity);
    }

    @Test
    void oneTokenOrTooManyAreRefused() {
        var model = new ToyModel(VOCAB, 8, 1);
        assertThrows(BadInputException.class, () -> new Scorer(model).score(new int[] {3}, null));
        var e = assertThrows(BadInputException.class, () -> new Scorer(model).score(sequence(9), null));
        assertTrue(e.getMessage().contains("context holds 8"), e.getMessage());
    }

    @Test
    void aTextFillingTheWholeContextCanBeScored() {
        var model = new ToyModel(VOCAB, 8, 1);
        assertEquals(7, new Scorer(model).score(sequence(8), null).logProbs().length);
    }
}
