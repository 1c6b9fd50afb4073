package dev.moe4j.moe.router;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.testing.FiniteDifferences;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Properties every routing strategy must keep, on random inputs. */
class RouterInvariantTest {
    private static final int H = 16;

    private static Routing route(MoeConfig c, int tokens, long seed, Mode mode) {
        Router router = Routers.initialize(c, new SplittableRandom(seed));
        Tensor x = FiniteDifferences.gaussian(new Random(seed), 1.0, tokens, c.hidden());
        return router.route(x, mode, new SplittableRandom(seed + 1));
    }

    @Test
    void fixedChoicesRouteEveryTokenToTheHandedExpertsUntilCleared() {
        MoeConfig c = MoeConfig.builder(H, 4, 6, 2).build();
        int tokens = 12;
        var router = (TopKRouter) Routers.initialize(c, new SplittableRandom(3));
        Tensor x = FiniteDifferences.gaussian(new Random(3), 1.0, tokens, H);
        int[] own = router.route(x, Mode.TRAINING, new SplittableRandom(4)).choices().clone();
        int[] fixed = new int[tokens * 2];
        for (int t = 0; t < tokens; t++) {
            fixed[2 * t] = t % 6;
            fixed[2 * t + 1] = (t + 3) % 6;
        }
        router.fixChoices(fixed);
        Routing r = router.route(x, Mode.TRAINING, new SplittableRandom(4));
        assertArrayEquals(fixed, r.choices());
        Dispatch d = r.dispatch();
        int[] expertOf = d.expertOfRows();
        for (int row = 0; row < d.rows(); row++) {
            int t = d.token()[row];
            assertTrue(expertOf[row] == fixed[2 * t] || expertOf[row] == fixed[2 * t + 1], "token " + t);
        }
        router.fixChoices(null);
        assertArrayEquals(own, router.route(x, Mode.TRAINING, new SplittableRandom(4)).choices());
    }

    @Test
    void expertChoiceGivesEveryExpertExactlyCapacityTokens() {
        MoeConfig c = MoeConfig.builder(H, 4, 8, 1).router(RouterKind.EXPERT_CHOICE)
                .capacity(Capacity.factor(1.5, Capacity.Rounding.FLOOR, 1)).build();
        int tokens = 40, capacity = 40 * 3 / 2 / 8;
        Routing r = route(c, tokens, 5, Mode.TRAINING);
        for (int e = 0; e < 8; e++) {
            assertEquals(capacity, r.dispatch().load(e), "expert " + e);
            var distinct = new HashSet<Integer>();
            for (int row = r.dispatch().offsets()[e]; row < r.dispatch().offsets()[e + 1]; row++) {
                distinct.add(r.dispatch().token()[row]);
            }
            assertEquals(capacity, distinct.size(), "an expert takes a token at most once");
        }
    }

    @Test
    void noExpertExceedsItsCapacityUnderEveryOverflowPolicyAndPriority() {
        for (Overflow overflow : Overflow.values()) {
            for (Priority priority : Priority.values()) {
                for (int k : new int[] {1, 2, 3}) {
                    MoeConfig c = MoeConfig.builder(H, 4, 6, k).capacity(Capacity.switchFactor(1.0))
                            .overflow(overflow).priority(priority).build();
                    int tokens = 30, capacity = c.capacity().perExpert(tokens, k, 6);
                    Routing r = route(c, tokens, 7 + k, Mode.INFERENCE);
                    Dispatch d = r.dispatch();
                    for (int e = 0; e < 6; e++) {
                        assertTrue(d.load(e) <= capacity, overflow + "/" + priority + "/k" + k + ": expert " + e);
                    }
                    assertEquals(tokens * k, d.rows() + r.dropped());
                    assertTokensHoldDistinctExperts(d);
                }
            }
        }
    }

    @Test
    void reRoutingServesOverflowedChoicesByTheNextPreferredExpertWithRoom() {
        MoeConfig drop = MoeConfig.builder(H, 4, 6, 2).capacity(Capacity.fixed(4)).build();
        MoeConfig next = drop.toBuilder().overflow(Overflow.NEXT_CHOICE).build();
        Routing dropped = route(drop, 20, 3, Mode.INFERENCE);
        Routing rerouted = route(next, 20, 3, Mode.INFERENCE);
        assertTrue(dropped.dropped() > 0, "the case must overflow");
        // 6 experts × 4 slots hold 24 of the 40 choices: re-routing fills every slot.
        assertEquals(24, rerouted.dispatch().rows());
        assertEquals(dropped.dropped() - (24 - dropped.dispatch().rows()), rerouted.dropped());
        assertTrue(rerouted.rerouted() > 0);
        assertTokensHoldDistinctExperts(rerouted.dispatch());
    }

    @Test
    void softMoeDispatchColumnsAndCombineRowsSumToOne() {
        MoeConfig c = MoeConfig.builder(H, 4, 4, 1).router(RouterKind.SOFT).slotsPerExpert(3).build();
        Routing r = route(c, 10, 9, Mode.INFERENCE);
        SoftDispatch s = r.soft();
        for (int slot = 0; slot < s.slots(); slot++) {
            double sum = 0;
            for (int t = 0; t < 10; t++) {
                sum += s.dispatch()[t * s.slots() + slot];
            }
            assertEquals(1, sum, 1e-5, "dispatch column " + slot);
        }
        for (int t = 0; t < 10; t++) {
            double sum = 0;
            for (int slot = 0; slot < s.slots(); slot++) {
                sum += s.combine()[t * s.slots() + slot];
            }
            assertEquals(1, sum, 1e-5, "combine row " + t);
        }
    }

    @Test
    void batchPriorityDropsTheTokensWithTheLowestTopScore() {
        MoeConfig c = MoeConfig.builder(H, 4, 4, 1).capacity(Capacity.fixed(3)).priority(Priority.SCORE).build();
        Routing r = route(c, 24, 13, Mode.INFERENCE);
        float[] g = r.gates();
        int[] choice = r.choices();
        boolean[] served = new boolean[24];
        for (int t : r.dispatch().token()) {
            served[t] = true;
        }
        // Within each expert, every served token scores at least as high as every dropped one.
        for (int e = 0; e < 4; e++) {
            float minServed = Float.POSITIVE_INFINITY, maxDropped = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < 24; t++) {
                if (choice[t] != e) {
                    continue;
                }
                float top = g[t * 4 + e];
                if (served[t]) {
                    minServed = Math.min(minServed, top);
                } else {
                    maxDropped = Math.max(maxDropped, top);
                }
            }
            assertTrue(minServed >= maxDropped, "expert " + e + ": dropped " + maxDropped + " > served " + minServed);
        }
        assertTrue(r.dropped() > 0, "the case must overflow");
    }

    @Test
    void positionPriorityDropsTheLatestTokens() {
        MoeConfig c = MoeConfig.builder(H, 4, 4, 1).capacity(Capacity.fixed(3)).build();
        Routing r = route(c, 24, 13, Mode.INFERENCE);
        Dispatch d = r.dispatch();
        for (int e = 0; e < 4; e++) {
            int lastServed = -1;
            for (int row = d.offsets()[e]; row < d.offsets()[e + 1]; row++) {
                assertTrue(d.token()[row] > lastServed, "slots fill in position order");
                lastServed = d.token()[row];
            }
            for (int t = 0; t < 24; t++) {
                int tt = t;
                if (r.choices()[t] == e && t < lastServed) {
                    assertTrue(Arrays.stream(d.token(), d.offsets()[e], d.offsets()[e + 1]).anyMatch(x -> x == tt),
                            "token " + t + " precedes a served token of expert " + e);
                }
            }
        }
    }

    @Test
    void groupLimitedSelectionChoosesOnlyInsideTheBestGroups() {
        MoeConfig c = MoeConfig.builder(H, 4, 16, 4).scoring(Scoring.SIGMOID).normalizeTopK(true)
                .groupLimit(GroupLimit.deepSeekV3(4, 2)).build();
        Routing r = route(c, 20, 21, Mode.INFERENCE);
        float[] s = r.gates();
        for (int t = 0; t < 20; t++) {
            // Group scores: sum of each group's two best scores; the two best groups.
            double[] gs = new double[4];
            for (int g = 0; g < 4; g++) {
                float[] v = Arrays.copyOfRange(s, t * 16 + g * 4, t * 16 + g * 4 + 4);
                Arrays.sort(v);
                gs[g] = v[3] + v[2];
            }
            Integer[] order = {0, 1, 2, 3};
            int tt = t;
            Arrays.sort(order, (a, b) -> Double.compare(gs[b], gs[a]));
            for (int j = 0; j < 4; j++) {
                int group = r.choices()[tt * 4 + j] / 4;
                assertTrue(group == order[0] || group == order[1], "token " + t + " chose outside its groups");
            }
        }
    }

    @Test
    void selectionBiasChangesWhichExpertsAreChosenButNotTheirWeights() {
        MoeConfig c = MoeConfig.builder(H, 4, 6, 2).scoring(Scoring.SIGMOID).selectionBias(true).build();
        var router = (TopKRouter) Routers.initialize(c, new SplittableRandom(4));
        Tensor x = FiniteDifferences.gaussian(new Random(4), 1.0, 10, H);
        router.selectionBias().setFloat(5, 10f); // forces expert 5 into every token's choices
        Routing r = router.route(x, Mode.INFERENCE, new SplittableRandom(0));
        Dispatch d = r.dispatch();
        assertEquals(10, d.load(5));
        for (int row = d.offsets()[5]; row < d.offsets()[6]; row++) {
            int t = d.token()[row];
            assertEquals(RouterMath.sigmoid(r.logits()[t * 6 + 5]), d.weight()[row], 1e-6,
                    "the weight is the unbiased score");
        }
    }

    @Test
    void renormalisedWeightsSumToTheScalingFactorAndTopKThenSoftmaxToOne() {
        MoeConfig renorm = MoeConfig.builder(H, 4, 8, 3).normalizeTopK(true).routedScalingFactor(2.5).build();
        MoeConfig gptOss = MoeConfig.builder(H, 4, 8, 3).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).build();
        assertTokenWeightSums(route(renorm, 15, 2, Mode.INFERENCE), 2.5);
        assertTokenWeightSums(route(gptOss, 15, 2, Mode.INFERENCE), 1.0);
    }

    @Test
    void denseRouterSendsEveryTokenToEveryExpertWithItsProbability() {
        MoeConfig c = MoeConfig.builder(H, 4, 5, 5).router(RouterKind.DENSE).build();
        Routing r = route(c, 7, 2, Mode.INFERENCE);
        assertEquals(35, r.dispatch().rows());
        assertTokenWeightSums(r, 1.0);
    }

    @Test
    void expertChoiceInferenceByThresholdDoesNotDependOnLaterTokens() {
        MoeConfig c = MoeConfig.builder(H, 4, 4, 1).router(RouterKind.EXPERT_CHOICE)
                .capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1)).thresholdMomentum(0.2).build();
        Router router = Routers.initialize(c, new SplittableRandom(8));
        var random = new Random(8);
        for (int step = 0; step < 20; step++) {
            router.route(FiniteDifferences.gaussian(random, 1.0, 32, H), Mode.TRAINING, new SplittableRandom(step));
        }
        Tensor sequence = FiniteDifferences.gaussian(random, 1.0, 12, H);
        Routing full = router.route(sequence, Mode.INFERENCE, new SplittableRandom(0));
        int assigned = 0;
        for (int t = 1; t <= 12; t++) {
            Routing prefix = router.route(sequence.slice(0, t), Mode.INFERENCE, new SplittableRandom(0));
            assertEquals(experts(full.dispatch(), t - 1), experts(prefix.dispatch(), t - 1), "token " + (t - 1));
            assigned += experts(full.dispatch(), t - 1).size();
        }
        // Trained thresholds take about capacity × tokens / experts... per expert: on average one expert a token.
        assertTrue(assigned > 0 && assigned < 12 * 4, "thresholds must select some, not all: " + assigned);
    }

    private static java.util.Set<Integer> experts(Dispatch d, int token) {
        var out = new java.util.TreeSet<Integer>();
        int[] ex = d.expertOfRows();
        for (int row = 0; row < d.rows(); row++) {
            if (d.token()[row] == token) {
                out.add(ex[row]);
            }
        }
        return out;
    }

    private static void assertTokenWeightSums(Routing r, double expected) {
        double[] sums = new double[r.tokens()];
        Dispatch d = r.dispatch();
        for (int row = 0; row < d.rows(); row++) {
            sums[d.token()[row]] += d.weight()[row];
        }
        for (int t = 0; t < sums.length; t++) {
            assertEquals(expected, sums[t], 1e-5, "token " + t);
        }
    }

    private static void assertTokensHoldDistinctExperts(Dispatch d) {
        int[] ex = d.expertOfRows();
        var seen = new HashSet<Long>();
        for (int row = 0; row < d.rows(); row++) {
            assertTrue(seen.add((long) d.token()[row] * 1000 + ex[row]), "token served twice by one expert");
        }
    }
}
