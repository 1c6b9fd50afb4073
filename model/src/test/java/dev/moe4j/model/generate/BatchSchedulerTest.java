package dev.moe4j.model.generate;

import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.testing.ToyText;
import dev.moe4j.model.transformer.InitialWeights;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sequences run by the scheduler, many per forward pass, joining and leaving between steps, long prompts fed in
 * chunks, give what each gives run alone by the {@link Generator}: the same tokens, text and stop reasons.
 */
class BatchSchedulerTest {
    private static final int VOCAB = 40;

    private static LanguageModel model() {
        var config = TinyModels.config("qwen3_moe", "\"max_position_embeddings\":96");
        return new TransformerModel(new Transformer(config, new InitialWeights(0.3, 9)), () -> { });
    }

    private record Request(int[] prompt, GenerationOptions options) {
    }

    private static List<Request> requests() {
        var out = new ArrayList<Request>();
        for (int i = 0; i < 7; i++) {
            int[] prompt = TinyModels.tokens(1 + 5 * i, VOCAB, i);
            var sampling = i % 2 == 0 ? SamplingConfig.greedy()
                    : new SamplingConfig(true, 0.9, 20, 0.95, 0.0, 1.1, 100 + i);
            out.add(new Request(prompt, new GenerationOptions(6 + 3 * i, sampling, i == 3 ? Set.of(7, 8) : Set.of(),
                    List.of(), null, false)));
        }
        return out;
    }

    @Test
    void theKvBytesFilledGrowWithTheSequenceAndGoBackToZeroWhenItEnds() throws Exception {
        try (LanguageModel model = model(); var scheduler = new BatchScheduler(model, 2, 8, 1L << 30)) {
            long perPosition = model.kvBytesPerPosition();
            int[] prompt = TinyModels.tokens(11, VOCAB, 1);
            var seen = new java.util.concurrent.CopyOnWriteArrayList<Long>();
            GenerationListener listener = (text, position) -> seen.add(scheduler.kvFilledBytes());
            var sequence = new DecodingSequence(model, new ToyText(), new SequenceCache(), prompt,
                    GenerationOptions.greedy(12, Set.of()), listener);
            Generation g = scheduler.submit(sequence, () -> null).get(30, TimeUnit.SECONDS);
            assertTrue(g.outputIds().length > 2);
            long last = 0;
            for (long filled : seen) {
                assertEquals(0, filled % perPosition, "whole positions");
                assertTrue(filled >= last && filled <= (long) (prompt.length + 12) * perPosition, seen.toString());
                last = filled;
            }
            assertTrue(last >= (long) prompt.length * perPosition, "the prompt's positions at least: " + seen);
            assertEquals(1L << 30, scheduler.kvBudgetBytes());
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (scheduler.kvFilledBytes() != 0 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(0, scheduler.kvFilledBytes());
            assertEquals(0, scheduler.kvReservedBytes());
        }
    }

    @Test
    void sequencesDecodedTogetherGiveWhatEachGivesAlone() throws Exception {
        try (LanguageModel model = model()) {
            var alone = new ArrayList<Generation>();
            var generator = new Generator(model, new ToyText());
            for (Request r : requests()) {
                alone.add(generator.generate(r.prompt(), r.options(), GenerationListener.NONE));
            }
            var texts = new ArrayList<StringBuilder>();
            var futures = new ArrayList<CompletableFuture<Generation>>();
            // three at a time, prompt chunks of 8 tokens a step: later requests wait, long prompts take several steps
            try (var scheduler = new BatchScheduler(model, 3, 8)) {
                for (Request r : requests()) {
                    var text = new StringBuilder();
                    texts.add(text);
                    var sequence = new DecodingSequence(model, new ToyText(), new SequenceCache(), r.prompt(),
                            r.options(), (piece, position) -> text.append(piece));
                    futures.add(scheduler.submit(sequence, () -> null));
                }
                for (int i = 0; i < futures.size(); i++) {
                    Generation g = futures.get(i).get(60, TimeUnit.SECONDS);
                    assertArrayEquals(alone.get(i).outputIds(), g.outputIds(), "request " + i);
                    assertEquals(alone.get(i).stopReason(), g.stopReason(), "request " + i);
                    assertEquals(alone.get(i).text(), g.text(), "request " + i);
                    assertEquals(g.text(), texts.get(i).toString(), "request " + i + "'s streamed text");
                }
                assertEquals(0, scheduler.running());
                assertEquals(0, scheduler.waiting());
            }
        }
    }

    @Test
    void aStoppedSequenceEndsWithItsStoppersExceptionAndTheOthersGoOn() throws Exception {
        try (LanguageModel model = model(); var scheduler = new BatchScheduler(model, 4, 64)) {
            var gone = new IllegalStateException("client left");
            var asked = new AtomicInteger();
            var stopped = scheduler.submit(new DecodingSequence(model, new ToyText(), new SequenceCache(),
                    new int[] {1, 2, 3}, GenerationOptions.greedy(30, Set.of()), GenerationListener.NONE),
                    () -> asked.incrementAndGet() > 3 ? gone : null);
            var finished = scheduler.submit(new DecodingSequence(model, new ToyText(), new SequenceCache(),
                    new int[] {4, 5}, GenerationOptions.greedy(10, Set.of()), GenerationListener.NONE), () -> null);
            var e = assertThrows(ExecutionException.class, () -> stopped.get(60, TimeUnit.SECONDS));
            assertSame(gone, e.getCause());
            assertEquals(10, finished.get(60, TimeUnit.SECONDS).outputIds().length);
        }
    }

    @Test
    void aSequenceSubmittedAfterCloseFails() {
        var model = model();
        var scheduler = new BatchScheduler(model, 2, 16);
        scheduler.close();
        var f = scheduler.submit(new DecodingSequence(model, new ToyText(), new SequenceCache(), new int[] {1},
                GenerationOptions.greedy(3, Set.of()), GenerationListener.NONE), () -> null);
        assertTrue(f.isCompletedExceptionally());
        model.close();
    }

    /** Counts the prompt tokens the model is fed (passes of more than one token). */
    private static final class Counting extends dev.moe4j.model.testing.ForwardingModel {
        final AtomicInteger promptTokens = new AtomicInteger();
        final AtomicInteger largestStep = new AtomicInteger();

        Counting(LanguageModel model) {
            super(model);
        }

        @Override
        public dev.moe4j.core.Tensor forward(dev.moe4j.model.InferenceState state, int[] tokens, boolean lastOnly,
                                             dev.moe4j.model.ForwardObserver observer) {
            promptTokens.addAndGet(tokens.length > 1 ? tokens.length : 0);
            return model.forward(state, tokens, lastOnly, observer);
        }

        @Override
        public dev.moe4j.core.Tensor forward(List<dev.moe4j.model.InferenceState> states, List<int[]> tokens) {
            tokens.forEach(t -> promptTokens.addAndGet(t.length > 1 ? t.length : 0));
            largestStep.accumulateAndGet(states.size(), Math::max);
            return model.forward(states, tokens);
        }
    }

    @Test
    void siblingsOfOnePromptFeedItOnceAndSampleAsEachAlone() throws Exception {
        try (LanguageModel base = model()) {
            int[] prompt = TinyModels.tokens(20, VOCAB, 5);
            var generator = new Generator(base, new ToyText());
            var expected = new ArrayList<Generation>();
            var options = new ArrayList<GenerationOptions>();
            for (int i = 0; i < 3; i++) {
                options.add(new GenerationOptions(8, new SamplingConfig(true, 1.1, 0, 1.0, 0.0, 1.0, 40 + i), Set.of(),
                        List.of(), null, false));
                expected.add(generator.generate(prompt, options.get(i), GenerationListener.NONE));
            }
            var model = new Counting(base);
            try (var scheduler = new BatchScheduler(model, 4, 64)) {
                var choices = new ArrayList<DecodingSequence>();
                for (int i = 0; i < 3; i++) {
                    choices.add(new DecodingSequence(model, new ToyText(), new SequenceCache(), prompt, options.get(i),
                            GenerationListener.NONE));
                }
                var futures = scheduler.submitChoices(choices, () -> null);
                for (int i = 0; i < 3; i++) {
                    Generation g = futures.get(i).get(60, TimeUnit.SECONDS);
                    assertArrayEquals(expected.get(i).outputIds(), g.outputIds(), "choice " + i);
                    assertEquals(i == 0 ? 0 : prompt.length, g.reusedTokens(), "choice " + i);
                }
            }
            assertEquals(prompt.length, model.promptTokens.get(), "the prompt went through the model once");
        }
    }

    @Test
    void aKvBudgetAdmitsWhatFitsAndRefusesWhatNeverCan() throws Exception {
        try (LanguageModel base = model()) {
            var model = new Counting(base);
            int[] prompt = TinyModels.tokens(10, VOCAB, 6);
            var options = GenerationOptions.greedy(6, Set.of());
            long oneRequest = 16 * model.kvBytesPerPosition();
            assertTrue(model.kvBytesPerPosition() > 0);
            var expected = new Generator(base, new ToyText()).generate(prompt, options, GenerationListener.NONE);
            // room for one request's 16 positions, not two: four submitted run one after the other
            try (var scheduler = new BatchScheduler(model, 4, 64, oneRequest + oneRequest / 2)) {
                var futures = new ArrayList<CompletableFuture<Generation>>();
                for (int i = 0; i < 4; i++) {
                    futures.add(scheduler.submit(new DecodingSequence(model, new ToyText(), new SequenceCache(), prompt,
                            options, GenerationListener.NONE), () -> null));
                }
                for (var f : futures) {
                    assertArrayEquals(expected.outputIds(), f.get(60, TimeUnit.SECONDS).outputIds());
                }
                assertEquals(1, model.largestStep.get(), "one sequence at a time within the budget");
                var tooLong = scheduler.submit(new DecodingSequence(model, new ToyText(), new SequenceCache(), prompt,
                        GenerationOptions.greedy(30, Set.of()), GenerationListener.NONE), () -> null);
                var e = assertThrows(ExecutionException.class, () -> tooLong.get(60, TimeUnit.SECONDS));
                assertTrue(e.getCause().getMessage().contains("needs " + 40 * model.kvBytesPerPosition()
                        + " bytes of KV cache (40 positions"), e.getCause().getMessage());
            }
        }
    }
}
