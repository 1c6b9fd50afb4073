package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.testing.ToyModel;
import dev.moe4j.model.testing.ToyText;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** The generation loop over a deterministic toy model whose greedy continuation is known in advance. */
class GeneratorTest {
    private static final int VOCAB = 64;
    private final ToyModel model = new ToyModel(VOCAB, 64, 2);
    private final Generator generator = new Generator(model, new ToyText());

    /** The greedy chain after the last prompt token. */
    private int[] chain(int last, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            last = model.successor(last);
            out[i] = last;
        }
        return out;
    }

    private static GenerationOptions greedy(int max) {
        return GenerationOptions.greedy(max, Set.of());
    }

    @Test
    void greedyDecodingFollowsTheModelsHighestLogits() {
        Generation g = generator.generate(new int[] {1, 2}, greedy(6), GenerationListener.NONE);
        assertArrayEquals(chain(2, 6), g.outputIds());
        assertArrayEquals(new int[] {1, 2}, g.promptIds());
        assertEquals(Generation.StopReason.MAX_TOKENS, g.stopReason());
        assertEquals(ToyText.decode(g.outputIds()), g.text());
    }

    @Test
    void thePromptGoesInOneForwardPassThenOneTokenAtATime() {
        generator.generate(new int[] {1, 2, 3}, greedy(4), GenerationListener.NONE);
        // prefill of 3 at position 0, then tokens 1..3 of the output fed at positions 3, 4, 5; the 4th is not fed
        assertEquals(List.of("0:3", "3:1", "4:1", "5:1"), model.calls.stream().map(c -> c[0] + ":" + c[1]).toList());
    }

    @Test
    void anEosIdEndsTheReplyAndIsNotPartOfIt() {
        int[] chain = chain(2, 6);
        int eos = chain[3];
        Generation g = generator.generate(new int[] {2}, GenerationOptions.greedy(10, Set.of(eos, 60)),
                GenerationListener.NONE);
        assertArrayEquals(java.util.Arrays.copyOf(chain, 3), g.outputIds());
        assertEquals(Generation.StopReason.EOS, g.stopReason());
        assertEquals(ToyText.decode(java.util.Arrays.copyOf(chain, 3)), g.text());
    }

    @Test
    void anEosIdAsTheFirstTokenGivesAnEmptyReply() {
        int first = model.successor(5);
        Generation g = generator.generate(new int[] {5}, GenerationOptions.greedy(10, Set.of(first)),
                GenerationListener.NONE);
        assertEquals(0, g.outputIds().length);
        assertEquals("", g.text());
        assertEquals(Generation.StopReason.EOS, g.stopReason());
    }

    @Test
    void streamedPiecesAddUpToTheText() {
        var pieces = new ArrayList<String>();
        Generation g = generator.generate(new int[] {1}, greedy(12), (text, position) -> pieces.add(text));
        assertEquals(g.text(), String.join("", pieces));
        assertTrue(pieces.size() > 1, "the reply came out in pieces");
    }

    @Test
    void aCharacterSplitOverTwoTokensIsStreamedWhole() {
        // a model whose greedy chain is é's first byte, then its second, then "w15"...
        var bytes = new ToyModel(VOCAB, 64, 1) {
            @Override
            public int successor(int token) {
                return token == ToyText.E_ACUTE_FIRST ? ToyText.E_ACUTE_SECOND : token == ToyText.E_ACUTE_SECOND ? 15
                        : ToyText.E_ACUTE_FIRST;
            }
        };
        var pieces = new ArrayList<String>();
        Generation g = new Generator(bytes, new ToyText()).generate(new int[] {1}, greedy(3),
                (text, position) -> pieces.add(text));
        assertEquals(List.of("é", "w15"), pieces);
        assertEquals("éw15", g.text());
    }

    @Test
    void aStopStringEndsTheReplyAndIsNotShown() {
        // chain after 1: successors give ids; pick a stop string made of the text of the 3rd and 4th tokens
        int[] chain = chain(1, 8);
        String stop = ToyText.decode(chain[2], chain[3]);
        var pieces = new ArrayList<String>();
        var options = new GenerationOptions(8, SamplingConfig.greedy(), Set.of(), List.of(stop), null, false);
        Generation g = generator.generate(new int[] {1}, options, (text, position) -> pieces.add(text));
        assertEquals(Generation.StopReason.STOP_STRING, g.stopReason());
        assertEquals(ToyText.decode(chain[0], chain[1]), g.text());
        assertEquals(g.text(), String.join("", pieces));
        assertArrayEquals(java.util.Arrays.copyOf(chain, 4), g.outputIds(), "the ids that made the stop string");
    }

    @Test
    void generationStopsWhereTheContextEnds() {
        var small = new ToyModel(VOCAB, 8, 1);
        Generation g = new Generator(small, new ToyText()).generate(new int[] {1, 2, 3}, greedy(100),
                GenerationListener.NONE);
        assertEquals(5, g.outputIds().length);
        assertEquals(Generation.StopReason.CONTEXT_FULL, g.stopReason());
    }

    @Test
    void aPromptLongerThanTheContextIsRefused() {
        var small = new ToyModel(VOCAB, 4, 1);
        var e = assertThrows(BadInputException.class, () -> new Generator(small, new ToyText())
                .generate(new int[] {1, 2, 3, 4, 5}, greedy(1), GenerationListener.NONE));
        assertEquals("the prompt has 5 tokens but the model's context holds 4 (config.json max_position_embeddings)",
                e.getMessage());
        assertTrue(small.calls.isEmpty(), "nothing was run");
    }

    @Test
    void aPromptFillingTheWholeContextLeavesNoRoom() {
        var small = new ToyModel(VOCAB, 4, 1);
        var e = assertThrows(BadInputException.class, () -> new Generator(small, new ToyText())
                .generate(new int[] {1, 2, 3, 4}, greedy(1), GenerationListener.NONE));
        assertTrue(e.getMessage().contains("leaves no room"), e.getMessage());
    }

    @Test
    void promptIdsOutsideTheVocabularyAreRefused() {
        var e = assertThrows(BadInputException.class,
                () -> generator.generate(new int[] {1, VOCAB}, greedy(1), GenerationListener.NONE));
        assertEquals("prompt token 1 has id 64, outside the model's vocabulary of 64 ids (config.json vocab_size)",
                e.getMessage());
        assertThrows(BadInputException.class, () -> generator.generate(new int[] {}, greedy(1), GenerationListener.NONE));
    }

    @Test
    void samplingWithTheSameSeedRepeatsAndADifferentSeedDiffers() {
        var sampling = SamplingConfig.DEFAULTS.withSample(true).withTemperature(1.5).withTopK(0);
        var a = new GenerationOptions(30, sampling.withSeed(11), Set.of(), List.of(), null, false);
        var b = new GenerationOptions(30, sampling.withSeed(12), Set.of(), List.of(), null, false);
        int[] first = generator.generate(new int[] {3}, a, GenerationListener.NONE).outputIds();
        int[] again = generator.generate(new int[] {3}, a, GenerationListener.NONE).outputIds();
        int[] other = generator.generate(new int[] {3}, b, GenerationListener.NONE).outputIds();
        assertArrayEquals(first, again);
        assertFalse(java.util.Arrays.equals(first, other));
        assertFalse(java.util.Arrays.equals(first, chain(3, 30)), "sampling left the greedy chain");
    }

    @Test
    void theRepetitionPenaltyCountsThePrompt() {
        // greedy would pick successor(4) next; with it already in the prompt and a large penalty it is avoided
        int next = model.successor(4);
        var options = new GenerationOptions(1, SamplingConfig.greedy().withRepetitionPenalty(100), Set.of(),
                List.of(), null, false);
        int[] out = generator.generate(new int[] {next, 4}, options, GenerationListener.NONE).outputIds();
        assertNotEquals(next, out[0]);
        int[] plain = generator.generate(new int[] {next, 4}, greedy(1), GenerationListener.NONE).outputIds();
        assertEquals(next, plain[0]);
    }

    @Test
    void withRouteEveryTokenEachTokensRoutingIsHeardBeforeItsText() {
        var trace = new ExpertTrace();
        var options = new GenerationOptions(5, SamplingConfig.greedy(), Set.of(), List.of(), trace, true);
        var missing = new ArrayList<Integer>();
        Generation g = generator.generate(new int[] {1, 2}, options, (text, position) -> {
            if (trace.firstExpert(position, 1).isEmpty()) {
                missing.add(position);
            }
        });
        assertEquals(List.of(), missing);
        // every position of prompt and output was routed, the last output token included
        for (int p = 0; p < 2 + g.outputIds().length; p++) {
            assertTrue(trace.firstExpert(p, 0).isPresent(), "position " + p);
        }
    }

    @Test
    void timingsCountTheDecodeSteps() {
        Generation g = generator.generate(new int[] {1}, greedy(5), GenerationListener.NONE);
        assertEquals(4, g.timings().decodeSteps(), "the first token comes from the prefill");
        assertTrue(g.timings().prefillNanos() >= 0 && g.timings().firstTokenNanos() >= g.timings().prefillNanos());
    }
}
