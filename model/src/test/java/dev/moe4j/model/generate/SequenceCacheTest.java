package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.testing.ToyModel;
import dev.moe4j.model.testing.ToyText;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static dev.moe4j.core.testing.Reference.values;
import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Generation that continues from a kept {@link SequenceCache}: which ids the cache holds afterwards, how much of
 * the next prompt it spares, and, on the fixture models (gpt-oss with its sliding window included), that the
 * kept prefix gives the tokens and logits of a fresh prefill of the whole prompt.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SequenceCacheTest {
    private static final int VOCAB = 64;
    private final ToyModel toy = new ToyModel(VOCAB, 64, 2);
    private final Map<String, TransformerModel> fixtures = new HashMap<>();

    @BeforeAll
    void load() {
        for (String name : List.of("mixtral", "gpt-oss", "deepseek-v3")) {
            fixtures.put(name, ModelLoader.load(Resources.fixture(name)));
        }
    }

    @AfterAll
    void close() {
        fixtures.values().forEach(TransformerModel::close);
    }

    private static GenerationOptions greedy(int max) {
        return GenerationOptions.greedy(max, Set.of());
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }

    private List<String> calls(ToyModel model) {
        return model.calls.stream().map(c -> c[0] + ":" + c[1]).toList();
    }

    // ---- what the cache holds and what it spares (toy model) ----

    @Test
    void afterReachingTheBudgetTheCacheHoldsThePromptAndEveryTokenButTheLast() {
        var cache = new SequenceCache();
        Generation g = new Generator(toy, new ToyText()).generate(cache, new int[] {1, 2, 3}, greedy(4),
                GenerationListener.NONE);
        assertArrayEquals(concat(new int[] {1, 2, 3}, Arrays.copyOf(g.outputIds(), 3)), cache.ids(),
                "the 4th token was chosen but never fed");
        assertEquals(0, g.reusedTokens());
        assertEquals(3, g.timings().prefillTokens());
    }

    @Test
    void afterAnEosIdTheCacheHoldsEveryOutputTokenButNotTheEos() {
        int eos = toy.successor(toy.successor(toy.successor(2)));
        var cache = new SequenceCache();
        Generation g = new Generator(toy, new ToyText()).generate(cache, new int[] {2},
                GenerationOptions.greedy(10, Set.of(eos)), GenerationListener.NONE);
        assertEquals(2, g.outputIds().length);
        assertArrayEquals(concat(new int[] {2}, g.outputIds()), cache.ids());
    }

    @Test
    void routingEveryTokenLeavesTheLastTokenInTheCache() {
        var cache = new SequenceCache();
        var options = new GenerationOptions(4, SamplingConfig.greedy(), Set.of(), List.of(), new ExpertTrace(), true);
        Generation g = new Generator(toy, new ToyText()).generate(cache, new int[] {1, 2}, options,
                GenerationListener.NONE);
        assertArrayEquals(concat(new int[] {1, 2}, g.outputIds()), cache.ids());
    }

    @Test
    void aPromptExtendingTheCachedSequenceFeedsOnlyItsNewTokens() {
        var generator = new Generator(toy, new ToyText());
        var cache = new SequenceCache();
        Generation first = generator.generate(cache, new int[] {1, 2, 3}, greedy(4), GenerationListener.NONE);
        toy.calls.clear();
        // the next turn: the whole reply (its last token was never fed) and a new message
        int[] next = concat(new int[] {1, 2, 3}, first.outputIds(), new int[] {9, 8});
        Generation second = generator.generate(cache, next, greedy(2), GenerationListener.NONE);
        assertEquals(6, second.reusedTokens());
        assertEquals(3, second.timings().prefillTokens());
        assertEquals(List.of("6:3", "9:1"), calls(toy));
        assertArrayEquals(generator.generate(next, greedy(2), GenerationListener.NONE).outputIds(),
                second.outputIds());
    }

    @Test
    void aPromptThatDivergesReusesExactlyTheCommonPrefix() {
        var generator = new Generator(toy, new ToyText());
        var cache = new SequenceCache();
        generator.generate(cache, new int[] {1, 2, 3, 4, 5, 6}, greedy(3), GenerationListener.NONE);
        toy.calls.clear();
        Generation g = generator.generate(cache, new int[] {1, 2, 3, 7, 5, 6}, greedy(1), GenerationListener.NONE);
        assertEquals(3, g.reusedTokens());
        assertEquals(List.of("3:3"), calls(toy));
        assertArrayEquals(new int[] {1, 2, 3, 7, 5, 6}, cache.ids(), "the budget's one token was not fed");
    }

    @Test
    void thePromptsLastTokenIsAlwaysFedForItsLogits() {
        var generator = new Generator(toy, new ToyText());
        var cache = new SequenceCache();
        generator.generate(cache, new int[] {1, 2, 3, 4}, greedy(3), GenerationListener.NONE);
        toy.calls.clear();
        Generation shorter = generator.generate(cache, new int[] {1, 2, 3}, greedy(1), GenerationListener.NONE);
        assertEquals(2, shorter.reusedTokens(), "the whole prompt is held; its last token is fed again");
        assertEquals(List.of("2:1"), calls(toy));
        assertArrayEquals(new int[] {toy.successor(3)}, shorter.outputIds());
    }

    @Test
    void clearingTheCacheFeedsTheNextPromptWhole() {
        var generator = new Generator(toy, new ToyText());
        var cache = new SequenceCache();
        generator.generate(cache, new int[] {1, 2, 3}, greedy(3), GenerationListener.NONE);
        cache.clear();
        assertEquals(0, cache.length());
        toy.calls.clear();
        assertEquals(0, generator.generate(cache, new int[] {1, 2, 3, 4}, greedy(1), GenerationListener.NONE)
                .reusedTokens());
        assertEquals(List.of("0:4"), calls(toy));
    }

    @Test
    void aPromptThatOutgrowsTheStateGrowsItAndKeepsThePrefix() {
        int before = toy.liveStates;
        var generator = new Generator(toy, new ToyText());
        var cache = new SequenceCache();
        // a state of 3 + 2 positions; the next prompt needs 12 + 4
        generator.generate(cache, new int[] {1, 2, 3}, greedy(2), GenerationListener.NONE);
        toy.calls.clear();
        int[] longer = concat(cache.ids(), IntStream.range(10, 18).toArray());
        Generation g = generator.generate(cache, longer, greedy(4), GenerationListener.NONE);
        assertEquals(4, g.reusedTokens());
        assertEquals(List.of("4:8", "12:1", "13:1", "14:1"), calls(toy), "the toy refuses positions past its state");
        assertEquals(before + 1, toy.liveStates, "the outgrown state is released");
        cache.release();
        assertEquals(before, toy.liveStates);
    }

    @Test
    void aGenerationWithoutAKeptCacheReleasesItsState() {
        int before = toy.liveStates;
        new Generator(toy, new ToyText()).generate(new int[] {1, 2, 3}, greedy(3), GenerationListener.NONE);
        assertEquals(before, toy.liveStates);
    }

    @Test
    void aPromptThatDoesNotFitTheContextIsRefusedAndTheCacheKeepsItsSequence() {
        var small = new ToyModel(VOCAB, 8, 1);
        var generator = new Generator(small, new ToyText());
        var cache = new SequenceCache();
        generator.generate(cache, new int[] {1, 2, 3}, greedy(2), GenerationListener.NONE);
        int[] held = cache.ids();
        assertThrows(BadInputException.class, () -> generator.generate(cache, new int[] {1, 2, 3, 4, 5, 6, 7, 8},
                greedy(1), GenerationListener.NONE));
        assertArrayEquals(held, cache.ids());
        small.calls.clear();
        assertEquals(4, generator.generate(cache, concat(held, new int[] {9}), greedy(1), GenerationListener.NONE)
                .reusedTokens());
        assertEquals(List.of("4:1"), calls(small));
    }

    @Test
    void aFailedPassLeavesTheCacheHoldingOnlyWhatWasFedBeforeIt() {
        var failing = new ToyModel(VOCAB, 64, 1) {
            int failAt = -1;

            @Override
            public Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer) {
                Tensor logits = super.forward(state, tokens, lastOnly, observer);
                if (calls.size() == failAt) {
                    throw new IllegalStateException("the device failed after the pass advanced the state");
                }
                return logits;
            }
        };
        failing.failAt = 3;
        var generator = new Generator(failing, new ToyText());
        var cache = new SequenceCache();
        assertThrows(IllegalStateException.class,
                () -> generator.generate(cache, new int[] {1, 2, 3}, greedy(8), GenerationListener.NONE));
        // the prefill and the first decoding step succeeded; the second advanced the state, then failed
        int[] held = concat(new int[] {1, 2, 3}, new int[] {failing.successor(3)});
        assertArrayEquals(held, cache.ids());
        failing.calls.clear();
        Generation g = generator.generate(cache, concat(held, new int[] {5, 6}), greedy(1), GenerationListener.NONE);
        assertEquals(4, g.reusedTokens());
        assertEquals(List.of("4:2"), calls(failing), "the state went back to the ids it holds");
    }

    @Test
    void aModelWhoseRoutingDependsOnTheBatchIsNeverReused() {
        var capped = new ToyModel(VOCAB, 64, 1) {
            @Override
            public ModelConfig config() {
                ModelConfig c = super.config();
                return c.toBuilder().moe(c.moe().orElseThrow().toBuilder().capacity(Capacity.fixed(2)).build()).build();
            }
        };
        var generator = new Generator(capped, new ToyText());
        var cache = new SequenceCache();
        generator.generate(cache, new int[] {1, 2, 3}, greedy(2), GenerationListener.NONE);
        capped.calls.clear();
        Generation g = generator.generate(cache, concat(cache.ids(), new int[] {7}), greedy(1),
                GenerationListener.NONE);
        assertEquals(0, g.reusedTokens(), "a capacity makes a token's experts depend on the tokens fed with it");
        assertEquals(List.of("0:5"), calls(capped));
    }

    // ---- the fixture models: a kept prefix computes what a fresh prefill does ----

    private int[] ids(TransformerModel model, long seed, int n) {
        return new SplittableRandom(seed).ints(n, 0, model.config().vocabSize()).toArray();
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "gpt-oss", "deepseek-v3"})
    void aSecondTurnFromTheKeptCacheGeneratesWhatAFreshPrefillDoes(String name) {
        TransformerModel model = fixtures.get(name);
        var generator = new Generator(model, new ToyText());
        var cache = new SequenceCache();
        int[] turn1 = ids(model, 1, 9);
        Generation first = generator.generate(cache, turn1, greedy(6), GenerationListener.NONE);
        // the next prompt: the reply re-read as the template would, then a new message
        int[] turn2 = concat(turn1, first.outputIds(), ids(model, 2, 7));
        Generation reused = generator.generate(cache, turn2, greedy(8), GenerationListener.NONE);
        Generation fresh = generator.generate(turn2, greedy(8), GenerationListener.NONE);
        assertEquals(turn1.length + first.outputIds().length - 1, reused.reusedTokens());
        assertEquals(turn2.length - reused.reusedTokens(), reused.timings().prefillTokens());
        assertArrayEquals(fresh.outputIds(), reused.outputIds(), name + " greedy tokens");

        // a re-tokenised reply that differs from the generated ids: only the identical prefix is kept
        int[] retokenised = turn2.clone();
        retokenised[turn1.length + 2] = (retokenised[turn1.length + 2] + 1) % model.config().vocabSize();
        Generation diverged = generator.generate(cache, retokenised, greedy(8), GenerationListener.NONE);
        assertEquals(turn1.length + 2, diverged.reusedTokens());
        assertArrayEquals(generator.generate(retokenised, greedy(8), GenerationListener.NONE).outputIds(),
                diverged.outputIds(), name + " greedy tokens after the divergence");
    }

    @Test
    void aPrefixComputedWithAnotherRoutingIsFedAgain() {
        TransformerModel model = fixtures.get("mixtral");
        var generator = new Generator(model, new ToyText());
        var cache = new SequenceCache();
        var one = RoutingPolicy.experts(1);
        int[] turn1 = ids(model, 4, 9);
        Generation trained = generator.generate(cache, turn1, greedy(4), GenerationListener.NONE);
        int[] turn2 = concat(turn1, trained.outputIds(), ids(model, 5, 3));
        Generation routed = generator.generate(cache, turn2, greedy(4).withRouting(one), GenerationListener.NONE);
        assertEquals(0, routed.reusedTokens(), "the cache held keys and values of the trained routing");
        assertEquals(one, cache.routing());
        assertArrayEquals(generator.generate(turn2, greedy(4).withRouting(one), GenerationListener.NONE).outputIds(),
                routed.outputIds());
        int[] turn3 = concat(turn2, routed.outputIds(), ids(model, 6, 3));
        Generation again = generator.generate(cache, turn3, greedy(4).withRouting(one), GenerationListener.NONE);
        assertEquals(turn2.length + routed.outputIds().length - 1, again.reusedTokens(), "same routing: kept");
        var bounded = RoutingPolicy.parse("capacity=1", "--policy");
        Generation capacity = generator.generate(cache, turn3, greedy(4).withRouting(bounded), GenerationListener.NONE);
        generator.generate(cache, turn3, greedy(4).withRouting(bounded), GenerationListener.NONE);
        assertEquals(0, generator.generate(cache, turn3, greedy(4).withRouting(bounded), GenerationListener.NONE)
                .reusedTokens(), "tokens that compete for a capacity are routed with the whole prompt");
        assertEquals(4, capacity.outputIds().length);
    }

    @Test
    void aGenerationRoutedByAPolicyFollowsItsStateStepByStep() {
        TransformerModel model = fixtures.get("mixtral");
        var policy = RoutingPolicy.parse("top-p=0.3 max=4", "--policy");
        int[] prompt = ids(model, 7, 6);
        Generation g = new Generator(model, new ToyText()).generate(prompt, greedy(6).withRouting(policy),
                GenerationListener.NONE);
        InferenceState state = model.newState(prompt.length + 6);
        state.routing(policy);
        float[] logits = model.forward(state, prompt, true, null).toFloatArray();
        for (int t = 0; t < 6; t++) {
            int next = argmax(logits);
            assertEquals(next, g.outputIds()[t], "token " + t);
            logits = model.forward(state, new int[] {next}, true, null).toFloatArray();
        }
        assertThrows(BadInputException.class, () -> new Generator(model, new ToyText()).generate(prompt,
                greedy(2).withRouting(RoutingPolicy.experts(9)), GenerationListener.NONE));
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "gpt-oss", "deepseek-v3"})
    void aRewoundAndGrownStateGivesTheLogitsOfTheWholeSequence(String name) {
        TransformerModel model = fixtures.get(name);
        int[] sequence = ids(model, 3, 24);
        Tensor whole = model.forward(model.newState(sequence.length), sequence, false, null);

        // 14 positions fed, 4 of them other ids than the sequence's, rewound to the 10 shared
        InferenceState state = model.newState(14);
        model.forward(state, concat(Arrays.copyOf(sequence, 10), ids(model, 4, 4)), true, null);
        state.rewind(10);
        // no room for the rest: a grown copy, past the sliding window of gpt-oss (4) and fed in two pieces
        InferenceState grown = state.grown(sequence.length);
        assertEquals(10, grown.position());
        Tensor middle = model.forward(grown, Arrays.copyOfRange(sequence, 10, 17), false, null);
        Tensor end = model.forward(grown, Arrays.copyOfRange(sequence, 17, 24), false, null);
        assertClose(values(whole.slice(10, 17)), middle, 1e-5, name + " logits after the kept prefix");
        assertClose(values(whole.slice(17, 24)), end, 1e-5, name + " logits after the grown state");
        assertEquals(10, state.position(), "the state that was grown is left as it was");
    }
}
