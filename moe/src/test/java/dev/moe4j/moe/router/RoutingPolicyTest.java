package dev.moe4j.moe.router;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.testing.FiniteDifferences;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

/** What each routing policy chooses, on hand-made router scores, and that the policies equal to training change nothing. */
class RoutingPolicyTest {
    private static final int H = 8;
    /** Softmax of these logits is 0.5, 0.3, 0.15, 0.05. */
    private static final float[] ONE_TOKEN = logitsOf(0.5, 0.3, 0.15, 0.05);

    private static float[] logitsOf(double... probabilities) {
        float[] out = new float[probabilities.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) Math.log(probabilities[i]);
        }
        return out;
    }

    private static TopKRouter router(MoeConfig c) {
        return (TopKRouter) Routers.initialize(c, new SplittableRandom(7));
    }

    private static MoeConfig softmax(int experts, int k, boolean normalize) {
        return MoeConfig.builder(H, 4, experts, k).normalizeTopK(normalize).build();
    }

    private static Routing route(MoeConfig c, float[] logits, String policy) {
        int tokens = logits.length / c.experts();
        return router(c).routeLogits(logits, tokens, PolicyRows.of(0, RoutingPolicy.parse(policy, "--policy"), tokens));
    }

    /** Token t's experts and weights as the dispatch serves them. */
    private static Map<Integer, Float> served(Routing r, int token) {
        var out = new TreeMap<Integer, Float>();
        Dispatch d = r.dispatch();
        int[] expert = d.expertOfRows();
        for (int row = 0; row < d.rows(); row++) {
            if (d.token()[row] == token) {
                out.put(expert[row], d.weight()[row]);
            }
        }
        return out;
    }

    @Test
    void topPTakesExpertsInScoreOrderUntilTheirMassReachesP() {
        MoeConfig c = softmax(4, 2, true);
        assertEquals(Set.of(0), served(route(c, ONE_TOKEN, "top-p=0.45"), 0).keySet());
        assertEquals(Set.of(0, 1), served(route(c, ONE_TOKEN, "top-p=0.7"), 0).keySet());
        // the trained k (2) is top-p's maximum unless raised
        assertEquals(Set.of(0, 1), served(route(c, ONE_TOKEN, "top-p=0.9"), 0).keySet());
        assertEquals(Set.of(0, 1, 2), served(route(c, ONE_TOKEN, "top-p=0.9 max=4"), 0).keySet());
        assertEquals(Set.of(0, 1, 2, 3), served(route(c, ONE_TOKEN, "top-p=0.99 max=4"), 0).keySet());
        assertEquals(Set.of(0, 1), served(route(c, ONE_TOKEN, "top-p=0.2 min=2"), 0).keySet());
        // renormalised over the chosen set, as Mixtral renormalises its top k
        Map<Integer, Float> w = served(route(c, ONE_TOKEN, "top-p=0.9 max=4"), 0);
        assertEquals(0.5 / 0.95, w.get(0), 1e-6);
        assertEquals(0.15 / 0.95, w.get(2), 1e-6);
    }

    @Test
    void theFloorDropsExpertsUnderItsProbabilityButKeepsAtLeastOne() {
        MoeConfig c = softmax(4, 3, true);
        assertEquals(Set.of(0, 1), served(route(c, ONE_TOKEN, "floor=0.2"), 0).keySet());
        assertEquals(Set.of(0), served(route(c, ONE_TOKEN, "floor=0.6"), 0).keySet());
        assertEquals(Set.of(0, 1), served(route(c, ONE_TOKEN, "floor=0.6 min=2"), 0).keySet());
        assertEquals(1f, served(route(c, ONE_TOKEN, "floor=0.6"), 0).get(0), 1e-6);
    }

    @Test
    void aMaskRemovesTheExpertFromTheRouterAsIfTheModelNeverHadIt() {
        // renormalised: weights over the chosen set; not renormalised: the softmax over the experts left
        Map<Integer, Float> norm = served(route(softmax(4, 2, true), ONE_TOKEN, "mask=0:0"), 0);
        assertEquals(Set.of(1, 2), norm.keySet());
        assertEquals(0.3 / 0.45, norm.get(1), 1e-6);
        Map<Integer, Float> raw = served(route(softmax(4, 2, false), ONE_TOKEN, "mask=0:0"), 0);
        assertEquals(0.3 / 0.5, raw.get(1), 1e-6);
        assertEquals(0.15 / 0.5, raw.get(2), 1e-6);
        // a mask of another layer changes nothing here; * masks every layer
        assertEquals(Set.of(0, 1), served(route(softmax(4, 2, true), ONE_TOKEN, "mask=3:0"), 0).keySet());
        assertEquals(Set.of(0, 3), served(route(softmax(4, 2, true), ONE_TOKEN, "mask=*:1-2"), 0).keySet());
    }

    @Test
    void forcedExpertsComeFirstAndCountTowardsK() {
        Map<Integer, Float> w = served(route(softmax(4, 2, true), ONE_TOKEN, "force=0:3"), 0);
        assertEquals(Set.of(0, 3), w.keySet());
        assertEquals(0.05 / 0.55, w.get(3), 1e-6);
        assertEquals(Set.of(3, 2), served(route(softmax(4, 2, true), ONE_TOKEN, "force=0:3,2"), 0).keySet());
        // the floor never drops a forced expert (0.05 < 0.3)
        assertEquals(Set.of(0, 3), served(route(softmax(4, 2, true), ONE_TOKEN, "force=0:3 floor=0.3"), 0).keySet());
        int[] choices = route(softmax(4, 2, true), ONE_TOKEN, "force=0:3").choices();
        assertEquals(3, choices[0], "forced first");
    }

    @Test
    void fewerOrMoreExpertsThanTrainedKeepTheFamilysWeights() {
        float[] logits = ONE_TOKEN;
        assertEquals(Map.of(0, 1f), served(route(softmax(4, 2, true), logits, "k=1"), 0));
        Map<Integer, Float> raw = served(route(softmax(4, 2, false), logits, "k=1"), 0);
        assertEquals(0.5, raw.get(0), 1e-6, "Qwen2-MoE/OLMoE keep the raw probability");
        Map<Integer, Float> three = served(route(softmax(4, 2, true), logits, "k=3"), 0);
        assertEquals(0.3 / 0.95, three.get(1), 1e-6);
        // gpt-oss: top k, then the softmax over the chosen logits
        MoeConfig gptOss = MoeConfig.builder(H, 4, 4, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).build();
        Map<Integer, Float> g = served(route(gptOss, logits, "k=3"), 0);
        assertEquals(0.15 / 0.95, g.get(2), 1e-6);
        // DeepSeek-V3: sigmoid scores renormalised over the chosen, times the routed scaling factor
        MoeConfig deepSeek = MoeConfig.builder(H, 4, 4, 2).scoring(Scoring.SIGMOID).normalizeTopK(true)
                .routedScalingFactor(2.5).build();
        float[] z = {2f, 1f, 0f, -1f};
        Map<Integer, Float> d = served(route(deepSeek, z, "k=1"), 0);
        assertEquals(2.5, d.get(0), 1e-6);
    }

    /** Configs of every family's router: softmax renormalised or not, top-k-then-softmax, sigmoid with groups and bias. */
    private static List<MoeConfig> families() {
        return List.of(softmax(8, 2, true), softmax(8, 4, false),
                MoeConfig.builder(H, 4, 8, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true).build(),
                MoeConfig.builder(H, 4, 8, 3).scoring(Scoring.SIGMOID).normalizeTopK(true).routedScalingFactor(2.5)
                        .selectionBias(true).groupLimit(GroupLimit.deepSeekV3(4, 2)).build());
    }

    @Test
    void policiesEqualToTheTrainedRoutingChangeNothing() {
        for (MoeConfig c : families()) {
            TopKRouter router = router(c);
            if (c.selectionBias()) {
                for (int i = 0; i < c.experts(); i++) {
                    router.selectionBias().setFloat(i, 0.1f * (i % 3));
                }
            }
            int tokens = 23;
            Tensor x = FiniteDifferences.gaussian(new Random(5), 1.0, tokens, H);
            Routing trained = router.route(x, Mode.INFERENCE, new SplittableRandom(1));
            int k = c.topK();
            for (String spec : List.of("k=" + k, "top-p=1 max=" + k, "top-p=1", "mask=0:0", "force=3:1",
                    "trained")) {
                var policy = RoutingPolicy.parse(spec, "--policy");
                Routing r = router.route(x, Mode.INFERENCE, new SplittableRandom(1), PolicyRows.of(1, policy, tokens));
                assertArrayEquals(trained.choices(), r.choices(), spec + " on " + c);
                assertArrayEquals(trained.topKGates(), r.topKGates(), spec + " on " + c);
                assertArrayEquals(trained.dispatch().token(), r.dispatch().token(), spec);
                assertArrayEquals(trained.dispatch().weight(), r.dispatch().weight(), spec);
                assertArrayEquals(trained.dispatch().offsets(), r.dispatch().offsets(), spec);
            }
        }
    }

    @Test
    void allExpertsPerTokenIsTheDenseRouter() {
        for (boolean normalize : new boolean[] {true, false}) {
            MoeConfig sparse = softmax(6, 2, normalize);
            MoeConfig dense = MoeConfig.builder(H, 4, 6, 6).router(RouterKind.DENSE).normalizeTopK(normalize).build();
            TopKRouter router = router(sparse);
            Tensor x = FiniteDifferences.gaussian(new Random(6), 1.0, 9, H);
            Routing all = router.route(x, Mode.INFERENCE, null, PolicyRows.of(0, RoutingPolicy.experts(6), 9));
            var denseRouter = new TopKRouter(dense, weightOf(router), null, null, null);
            Routing d = denseRouter.route(x, Mode.INFERENCE, null);
            assertArrayEquals(d.topKGates(), all.topKGates());
            float[] p = d.probabilities();
            for (int i = 0; i < p.length; i++) {
                assertEquals(p[i], all.topKGates()[i], 1e-6, "the dense weights are the router's probabilities");
            }
        }
    }

    private static Tensor weightOf(TopKRouter router) {
        return router.parameters().getFirst().value();
    }

    @Test
    void rowsOfOnePassFollowTheirOwnPolicies() {
        MoeConfig c = softmax(8, 2, true);
        TopKRouter router = router(c);
        int tokens = 10;
        Tensor x = FiniteDifferences.gaussian(new Random(8), 1.0, tokens, H);
        RoutingPolicy one = RoutingPolicy.experts(1), topP = RoutingPolicy.parse("top-p=0.6 max=4", "--policy");
        var rows = new PolicyRows(2, List.of(RoutingPolicy.TRAINED, one, topP), new int[] {0, 3, 7, 10});
        Routing mixed = router.route(x, Mode.INFERENCE, null, rows);
        Routing trained = router.route(x, Mode.INFERENCE, null);
        Routing allOne = router.route(x, Mode.INFERENCE, null, PolicyRows.of(2, one, tokens));
        Routing allTopP = router.route(x, Mode.INFERENCE, null, PolicyRows.of(2, topP, tokens));
        for (int t = 0; t < tokens; t++) {
            Routing alone = t < 3 ? trained : t < 7 ? allOne : allTopP;
            assertEquals(served(alone, t), served(mixed, t), "token " + t);
        }
    }

    @Test
    void aCapacityBoundsThePolicysTokensAndReroutesTheirOverflow() {
        MoeConfig c = softmax(4, 2, true);
        TopKRouter router = router(c);
        int tokens = 16;
        // every token prefers experts 0 then 1: a capacity of ceil(1.0 · 32 / 4) = 8 fills them at 8 tokens
        float[] logits = new float[tokens * 4];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(logitsOf(0.5, 0.3, 0.15, 0.05), 0, logits, t * 4, 4);
        }
        Routing dropped = router.routeLogits(logits, tokens,
                PolicyRows.of(0, RoutingPolicy.parse("capacity=1", "--policy"), tokens));
        for (int e = 0; e < 4; e++) {
            assertTrue(dropped.dispatch().load(e) <= 8, "expert " + e + " over capacity");
        }
        assertEquals(16, dropped.dropped());
        Routing rerouted = router.routeLogits(logits, tokens,
                PolicyRows.of(0, RoutingPolicy.parse("capacity=1 overflow=next-choice", "--policy"), tokens));
        assertEquals(0, rerouted.dropped());
        assertEquals(16, rerouted.rerouted());
        for (int e = 0; e < 4; e++) {
            assertEquals(8, rerouted.dispatch().load(e));
        }
        // a late token lost both first choices and is served by experts 2 and 3, renormalised over them
        assertEquals(Set.of(2, 3), served(rerouted, 15).keySet());
        assertEquals(0.15 / 0.2, served(rerouted, 15).get(2), 1e-6);
        // rows of another policy in the same pass are not bounded
        var rows = new PolicyRows(0, List.of(RoutingPolicy.parse("capacity=1", "--policy"), RoutingPolicy.TRAINED),
                new int[] {0, 8, 16});
        Routing half = router.routeLogits(logits, tokens, rows);
        assertEquals(8, half.dropped(), "8 bounded tokens have a capacity of ceil(16 / 4) = 4 on each expert");
        for (int t = 8; t < 16; t++) {
            assertEquals(Set.of(0, 1), served(half, t).keySet());
        }
        assertEquals(12, half.dispatch().load(0));
    }

    @Test
    void aMaskedGroupIsNeverChosenAndAMaskedExpertScoresNoGroup() {
        MoeConfig c = MoeConfig.builder(H, 4, 8, 2).scoring(Scoring.SIGMOID).normalizeTopK(true)
                .groupLimit(GroupLimit.deepSeekV3(4, 1)).build();
        float[] z = {3f, 2.9f, 0f, -3f, -1f, -1f, -2f, -2f};
        assertEquals(Set.of(0, 1), served(route(c, z, "trained"), 0).keySet());
        // group 0 without expert 0 scores sigmoid(2.9) alone and still wins: the token gets the one expert left there
        assertEquals(Set.of(1), served(route(c, z, "mask=0:0"), 0).keySet());
        // a group whose experts are all masked is never chosen
        assertEquals(Set.of(2, 3), served(route(c, z, "mask=0:0-1"), 0).keySet());
    }

    @Test
    void policiesAreCheckedAgainstTheModelWithOneLineNamingTheOption() {
        MoeConfig c = softmax(8, 2, true);
        var layers = List.of(1, 3);
        var flags = RoutingPolicy.Naming.flags();
        assertMessage("--experts-per-token 9: the model's MoE layers have 8 experts",
                () -> RoutingPolicy.experts(9).check(c, layers, flags));
        assertMessage("--expert-mask 2:0: layer 2 is not an MoE layer of this model (MoE layers: 1,3)",
                () -> RoutingPolicy.builder(flags).mask("2:0").build().check(c, layers, flags));
        assertMessage("--expert-mask 1:8: expert 8 does not exist; the MoE layers have experts 0 to 7",
                () -> RoutingPolicy.builder(flags).mask("1:8").build().check(c, layers, flags));
        assertMessage("--expert-mask: every expert of layer 1 is masked; leave at least one",
                () -> RoutingPolicy.builder(flags).mask("*:0-7").build().check(c, layers, flags));
        assertMessage("--force-experts: expert 2 of layer 1 is also masked",
                () -> RoutingPolicy.builder(flags).mask("1:2").force("*:2").build().check(c, layers, flags));
        assertMessage("--experts-per-token and --expert-top-p both choose how many experts a token takes; give one",
                () -> RoutingPolicy.builder(flags).expertsPerToken(1).topP(0.5).build());
        assertMessage("--expert-top-p 1.5: expected a probability mass in (0, 1]",
                () -> RoutingPolicy.builder(flags).topP(1.5));
        assertMessage("--expert-mask 'x:1': 'x' is not an index of 0 or more (expected LAYER:EXPERTS such as 3:0,5"
                + " or *:7, several joined by ';')", () -> RoutingPolicy.builder(flags).mask("x:1"));
        var json = RoutingPolicy.Naming.fields("moe4j.routing.");
        assertMessage("moe4j.routing.max_experts 9: a token can take at most 8 experts in this model",
                () -> RoutingPolicy.builder(json).topP(0.5).maxExperts(9).build().check(c, layers, json));
        MoeConfig deepSeek = MoeConfig.builder(H, 4, 8, 2).scoring(Scoring.SIGMOID)
                .groupLimit(GroupLimit.deepSeekV3(4, 2)).build();
        assertMessage("--experts-per-token 5: a token chooses within its best 2 groups of 2 experts, at most 4 experts",
                () -> RoutingPolicy.experts(5).check(deepSeek, layers, flags));
        MoeConfig ec = MoeConfig.builder(H, 4, 8, 1).router(RouterKind.EXPERT_CHOICE)
                .capacity(dev.moe4j.moe.dispatch.Capacity.factor(1, dev.moe4j.moe.dispatch.Capacity.Rounding.FLOOR, 1))
                .build();
        assertMessage("routing policies change token-choice routing; this model routes by expert choice"
                + " (--experts-per-token)", () -> RoutingPolicy.experts(1).check(ec, layers, flags));
        RoutingPolicy.TRAINED.check(ec, layers, flags); // the trained routing fits every model
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable run) {
        assertEquals(expected, assertThrows(BadInputException.class, run).getMessage());
    }

    @Test
    void aPolicyReadsBackFromItsDescription() {
        for (String spec : List.of("trained", "k=1", "top-p=0.8 min=2 max=4", "floor=0.1", "mask=*:3;2:0,5 force=1:7",
                "capacity=1.25 overflow=next-choice priority=score")) {
            RoutingPolicy p = RoutingPolicy.parse(spec, "--policy");
            assertEquals(spec, p.toString());
            assertEquals(p, RoutingPolicy.parse(p.toString(), "--policy"));
        }
        assertEquals(new TreeSet<>(List.of(0, 1, 2, 5)),
                new TreeSet<>(RoutingPolicy.parse("mask=4:0-2,5,1", "--policy").masks().getFirst().experts()));
        assertTrue(RoutingPolicy.parse("trained", "--policy").isTrained());
        assertFalse(Arrays.asList(RoutingPolicy.experts(2)).contains(RoutingPolicy.TRAINED));
    }
}
