package dev.moe4j.model.generate;

import org.junit.jupiter.api.Test;

import java.util.BitSet;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The logits processors against values worked out by hand from transformers' definitions
 * (generation/logits_process.py): which entries survive, and what the survivors become.
 */
class LogitsProcessorsTest {
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    /** Logits whose softmax is exactly the given probabilities. */
    private static float[] logitsOf(double... probs) {
        float[] l = new float[probs.length];
        for (int i = 0; i < probs.length; i++) {
            l[i] = (float) Math.log(probs[i]);
        }
        return l;
    }

    private static BitSet ids(int... ids) {
        var b = new BitSet();
        for (int id : ids) {
            b.set(id);
        }
        return b;
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokensOnly() {
        float[] l = {2.0f, -2.0f, 3.0f, -1.0f};
        LogitsProcessors.repetitionPenalty(l, ids(0, 1, 3), 2.0);
        assertArrayEquals(new float[] {1.0f, -4.0f, 3.0f, -2.0f}, l);
    }

    @Test
    void repetitionPenaltyAppliesOncePerTokenHoweverOftenItWasSeen() {
        // the caller's set holds distinct ids; a token seen five times is still divided once
        float[] l = {4.0f};
        LogitsProcessors.repetitionPenalty(l, ids(0), 2.0);
        assertEquals(2.0f, l[0]);
    }

    @Test
    void temperatureDividesEveryLogit() {
        float[] l = {1.0f, -3.0f, 0.5f};
        LogitsProcessors.temperature(l, 0.5);
        assertArrayEquals(new float[] {2.0f, -6.0f, 1.0f}, l);
    }

    @Test
    void topKKeepsTheKLargestAndTiesWithTheKth() {
        float[] l = {1f, 5f, 3f, 3f, 0f};
        LogitsProcessors.topK(l, 2);
        // the 2nd largest is 3; both 3s stay, as transformers keeps every logit not below the k-th
        assertArrayEquals(new float[] {NEG_INF, 5f, 3f, 3f, NEG_INF}, l);
    }

    @Test
    void topKOfZeroOrAtLeastTheVocabularyKeepsEverything() {
        float[] l = {1f, 2f, 3f};
        LogitsProcessors.topK(l, 0);
        LogitsProcessors.topK(l, 3);
        assertArrayEquals(new float[] {1f, 2f, 3f}, l);
    }

    @Test
    void topPRemovesTheLeastLikelyTokensWhileTheirMassStaysWithinOneMinusTopP() {
        // probabilities 0.5, 0.3, 0.15, 0.05; top-p 0.75: ascending cumulative 0.05, 0.2, 0.5, 1.0;
        // entries with cumulative <= 0.25 go (0.05 and 0.15), 0.3 and 0.5 stay
        float[] l = logitsOf(0.5, 0.3, 0.15, 0.05);
        float[] before = l.clone();
        LogitsProcessors.topP(l, 0.75);
        assertArrayEquals(new float[] {before[0], before[1], NEG_INF, NEG_INF}, l);
    }

    @Test
    void topPAlwaysKeepsTheMostLikelyToken() {
        float[] l = logitsOf(0.9, 0.1);
        LogitsProcessors.topP(l, 0.01);
        assertEquals(NEG_INF, l[1]);
        assertNotEquals(NEG_INF, l[0]);
    }

    @Test
    void topPOfOneKeepsEverything() {
        float[] l = logitsOf(0.5, 0.3, 0.2);
        float[] before = l.clone();
        LogitsProcessors.topP(l, 1.0);
        assertArrayEquals(before, l);
    }

    @Test
    void topPIgnoresTokensAnEarlierStepRemoved() {
        float[] l = {0f, 0f, NEG_INF, 0f};
        // three equally likely tokens: cumulative 1/3, 2/3, 1; top-p 0.5 removes the first (1/3 <= 0.5) only
        LogitsProcessors.topP(l, 0.5);
        assertEquals(2, countFinite(l));
        assertEquals(NEG_INF, l[2]);
    }

    @Test
    void minPRemovesTokensBelowMinPTimesTheTopProbability() {
        // top probability 0.5; min-p 0.2 gives a threshold of 0.1: 0.05 goes, 0.12 and above stay
        float[] l = logitsOf(0.5, 0.33, 0.12, 0.05);
        float[] before = l.clone();
        LogitsProcessors.minP(l, 0.2);
        assertArrayEquals(new float[] {before[0], before[1], before[2], NEG_INF}, l, 0f);
    }

    @Test
    void argmaxTakesTheLowestIndexAmongEqualMaxima() {
        assertEquals(1, LogitsProcessors.argmax(new float[] {0f, 2f, 2f, -1f}));
    }

    @Test
    void probabilitiesAreTheSoftmaxOverFiniteLogits() {
        double[] p = LogitsProcessors.probabilities(new float[] {0f, (float) Math.log(3), NEG_INF});
        assertEquals(0.25, p[0], 1e-7);
        assertEquals(0.75, p[1], 1e-7);
        assertEquals(0.0, p[2]);
    }

    private static int countFinite(float[] l) {
        int n = 0;
        for (float x : l) {
            if (x != NEG_INF) {
                n++;
            }
        }
        return n;
    }
}
