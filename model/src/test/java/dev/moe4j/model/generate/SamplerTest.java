package dev.moe4j.model.generate;

import org.junit.jupiter.api.Test;

import java.util.BitSet;

import static org.junit.jupiter.api.Assertions.*;

/** The sampler: processor order, reproducibility from the seed, and draws that follow the distribution. */
class SamplerTest {
    private static final SamplingConfig SAMPLE = SamplingConfig.DEFAULTS.withSample(true).withTopK(0);

    private static int[] draws(SamplingConfig config, float[] logits, int n) {
        var sampler = new Sampler(config);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = sampler.next(logits.clone(), new BitSet());
        }
        return out;
    }

    @Test
    void theSameSeedDrawsTheSameTokens() {
        float[] logits = {0.1f, 0.5f, 0.2f, 0.9f, -0.3f};
        assertArrayEquals(draws(SAMPLE.withSeed(42), logits, 200), draws(SAMPLE.withSeed(42), logits, 200));
    }

    @Test
    void differentSeedsDrawDifferentTokens() {
        float[] logits = {0.1f, 0.5f, 0.2f, 0.9f, -0.3f};
        assertFalse(java.util.Arrays.equals(draws(SAMPLE.withSeed(1), logits, 200),
                draws(SAMPLE.withSeed(2), logits, 200)));
    }

    @Test
    void drawsFollowTheSoftmaxProbabilities() {
        // probabilities 0.1, 0.2, 0.3, 0.4; 40000 draws: each count within 4 standard deviations of n·p
        float[] logits = {(float) Math.log(0.1), (float) Math.log(0.2), (float) Math.log(0.3), (float) Math.log(0.4)};
        int n = 40_000;
        int[] counts = new int[4];
        for (int t : draws(SAMPLE.withSeed(7), logits, n)) {
            counts[t]++;
        }
        double[] p = {0.1, 0.2, 0.3, 0.4};
        for (int i = 0; i < 4; i++) {
            double sd = Math.sqrt(n * p[i] * (1 - p[i]));
            assertEquals(n * p[i], counts[i], 4 * sd, "token " + i + " drawn " + counts[i] + " times");
        }
    }

    @Test
    void greedyTakesTheHighestLogitAfterThePenalty() {
        float[] logits = {2.0f, 1.5f, 0.0f};
        var seen = new BitSet();
        seen.set(0);
        // 2.0 / 2 = 1.0 falls below 1.5
        assertEquals(1, new Sampler(SamplingConfig.greedy().withRepetitionPenalty(2.0)).next(logits, seen));
        assertEquals(0, new Sampler(SamplingConfig.greedy()).next(new float[] {2.0f, 1.5f, 0.0f}, seen));
    }

    @Test
    void greedyIgnoresTemperatureAndFilters() {
        var config = SamplingConfig.greedy().withTemperature(5.0).withTopK(1).withTopP(0.1);
        assertEquals(2, new Sampler(config).next(new float[] {0f, 1f, 3f}, new BitSet()));
    }

    @Test
    void topKOfOneSamplesLikeGreedy() {
        float[] logits = {0.3f, 0.1f, 0.9f, 0.8f};
        for (int t : draws(SAMPLE.withTopK(1).withSeed(3), logits, 100)) {
            assertEquals(2, t);
        }
    }

    @Test
    void temperatureComesBeforeMinP() {
        // probabilities at temperature 1: 0.5, 0.3, 0.2; min-p 0.5 keeps 0.3 (>= 0.25), drops 0.2.
        // At temperature 0.5 they sharpen to 25:9:4 /38 (0.66, 0.24, 0.11): the threshold 0.33 drops both others,
        // which only happens if temperature was applied first.
        float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.2)};
        for (int t : draws(SAMPLE.withTemperature(0.5).withMinP(0.5).withSeed(5), logits, 200)) {
            assertEquals(0, t);
        }
        boolean sawOne = false;
        for (int t : draws(SAMPLE.withMinP(0.5).withSeed(5), logits, 200)) {
            assertNotEquals(2, t);
            sawOne |= t == 1;
        }
        assertTrue(sawOne);
    }

    @Test
    void theRepetitionPenaltyComesBeforeTopK() {
        // token 0 leads until the penalty (4.0 / 4 = 1.0) puts it below token 1 (2.0): top-1 then keeps token 1
        var seen = new BitSet();
        seen.set(0);
        var sampler = new Sampler(SAMPLE.withRepetitionPenalty(4.0).withTopK(1).withSeed(1));
        assertEquals(1, sampler.next(new float[] {4.0f, 2.0f, 0.0f}, seen));
    }

    @Test
    void generationConfigValuesOverrideTheDefaults() {
        var g = GenerationConfig.read(dev.moe4j.io.json.Json.parse(
                "{\"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.95, \"top_k\": 20}", "g.json"), "g.json");
        var c = SamplingConfig.of(g);
        assertTrue(c.sample());
        assertEquals(0.6, c.temperature());
        assertEquals(20, c.topK());
        assertEquals(0.95, c.topP());
        assertEquals(0.0, c.minP());
        assertEquals(1.0, c.repetitionPenalty());
    }

    @Test
    void withoutAGenerationConfigDecodingIsGreedyWithTransformersDefaults() {
        var c = SamplingConfig.of(GenerationConfig.none());
        assertFalse(c.sample());
        assertEquals(50, c.topK());
        assertEquals(1.0, c.temperature());
    }

    @Test
    void aTemperatureOfZeroInTheGenerationConfigMeansGreedy() {
        var g = GenerationConfig.read(dev.moe4j.io.json.Json.parse("{\"do_sample\": true, \"temperature\": 0}", "g"),
                "g");
        assertFalse(SamplingConfig.of(g).sample());
    }

    private static int[] greedyRun(SamplingConfig config, int steps) {
        var sampler = new Sampler(config);
        int[] out = new int[steps];
        for (int i = 0; i < steps; i++) {
            out[i] = sampler.next(new float[] {0, 0, 0, 1.5f, 1.0f}, new BitSet());
        }
        return out;
    }

    @Test
    void presenceAndFrequencyPenaltiesLowerTheTokensAlreadyChosen() {
        assertArrayEquals(new int[] {3, 3, 3, 3}, greedyRun(SamplingConfig.greedy(), 4));
        // presence: a chosen token loses 1 once, so 3 (1.5 -> 0.5) and 4 (1.0 -> 0.0) take turns
        assertArrayEquals(new int[] {3, 4, 3, 3}, greedyRun(SamplingConfig.greedy().withPenalties(1, 0), 4));
        // frequency: 0.3 per time chosen: 3 stays ahead of 4 for two picks (1.2 > 1.0, then 0.9 < 1.0)
        assertArrayEquals(new int[] {3, 3, 4, 3}, greedyRun(SamplingConfig.greedy().withPenalties(0, 0.3), 4));
        assertThrows(IllegalArgumentException.class, () -> SamplingConfig.greedy().withPenalties(2.5, 0));
    }
}
