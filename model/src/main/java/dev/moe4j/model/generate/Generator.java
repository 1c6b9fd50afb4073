package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.LanguageModel;

import java.util.Arrays;
import java.util.BitSet;

/**
 * Generates text with a {@link LanguageModel}: the prompt goes through the model in one forward pass (prefill),
 * then each chosen token is fed back alone against the KV cache (decode) until an end-of-sequence id, a stop
 * string, the token budget or the end of the model's context. Text streams to a {@link GenerationListener} as it
 * becomes final. A {@link SequenceCache} kept from an earlier generation spares the prefill the part of the prompt
 * it already holds.
 */
public final class Generator {
    private final LanguageModel model;
    private final TokenText text;

    public Generator(LanguageModel model, TokenText text) {
        this.model = model;
        this.text = text;
    }

    /** Generates a continuation of {@code prompt} from a fresh state. */
    public Generation generate(int[] prompt, GenerationOptions options, GenerationListener listener) {
        var cache = new SequenceCache();
        try {
            return generate(cache, prompt, options, listener);
        } finally {
            cache.release();
        }
    }

    /**
     * Generates a continuation of {@code prompt} in {@code cache}: the longest prefix of the prompt that the cache
     * holds is kept and only the rest is fed ({@link Generation#reusedTokens}). Afterwards the cache holds the
     * prompt and every generated token that went through the model (the last one chosen often did not: an EOS id,
     * or the token that reached the budget), ready for a next prompt that extends them.
     */
    public Generation generate(SequenceCache cache, int[] prompt, GenerationOptions options,
                               GenerationListener listener) {
        int context = model.config().maxPositions();
        checkPrompt(prompt, model.config().vocabSize(), context);
        if (prompt.length >= context) {
            throw new BadInputException("the prompt has " + prompt.length + " tokens, which leaves no room in the"
                    + " model's context of " + context + " positions (config.json max_position_embeddings)");
        }
        int budget = Math.min(options.maxNewTokens(), context - prompt.length);
        int reused = cache.prepare(model, prompt, prompt.length + budget);
        var run = new Run(cache, options.observer());

        var sampler = new Sampler(options.sampling());
        var seen = new BitSet(model.config().vocabSize());
        for (int id : prompt) {
            seen.set(id);
        }
        var stops = new StopStrings(options.stopStrings());
        TokenText.Incremental decoder = text.incremental();
        var shown = new StringBuilder();
        int[] output = new int[budget];
        int count = 0;

        long start = System.nanoTime();
        float[] logits = run.forward(Arrays.copyOfRange(prompt, reused, prompt.length));
        long prefill = System.nanoTime() - start;
        int next = sampler.next(logits, seen);
        long firstToken = System.nanoTime();
        run.steps = 0;

        Generation.StopReason reason;
        while (true) {
            if (options.eosTokenIds().contains(next)) {
                reason = Generation.StopReason.EOS;
                break;
            }
            output[count++] = next;
            seen.set(next);
            int position = prompt.length + count - 1;
            boolean fed = false;
            if (options.routeEveryToken()) {
                logits = run.forward(new int[] {next});
                fed = true;
            }
            emit(stops.accept(decoder.step(next)), position, shown, listener);
            if (stops.stopped()) {
                reason = Generation.StopReason.STOP_STRING;
                break;
            }
            if (count == budget) {
                reason = budget < options.maxNewTokens() ? Generation.StopReason.CONTEXT_FULL
                        : Generation.StopReason.MAX_TOKENS;
                break;
            }
            if (!fed) {
                logits = run.forward(new int[] {next});
            }
            next = sampler.next(logits, seen);
        }
        long end = System.nanoTime();
        int lastPosition = prompt.length + Math.max(count, 1) - 1;
        emit(stops.accept(decoder.finish()), lastPosition, shown, listener);
        emit(stops.flush(), lastPosition, shown, listener);

        var timings = new Generation.Timings(prompt.length - reused, prefill, firstToken - start, end - firstToken,
                run.steps);
        return new Generation(prompt.clone(), Arrays.copyOf(output, count), shown.toString(), reason, timings,
                options.sampling());
    }

    /**
     * Checks a prompt against the model: not empty, every id inside the vocabulary, no longer than the context.
     */
    static void checkPrompt(int[] ids, int vocabSize, int context) {
        if (ids.length == 0) {
            throw new BadInputException("the prompt is empty: at least one token is needed");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new BadInputException("prompt token " + i + " has id " + ids[i] + ", outside the model's"
                        + " vocabulary of " + vocabSize + " ids (config.json vocab_size)");
            }
        }
        if (ids.length > context) {
            throw new BadInputException("the prompt has " + ids.length + " tokens but the model's context holds "
                    + context + " (config.json max_position_embeddings)");
        }
    }

    private static void emit(String piece, int position, StringBuilder shown, GenerationListener listener) {
        if (!piece.isEmpty()) {
            shown.append(piece);
            listener.onText(piece, position);
        }
    }

    /** One sequence's state in the model, counting the forward passes after the prompt. */
    private final class Run {
        final SequenceCache cache;
        final ForwardObserver observer;
        int steps;

        Run(SequenceCache cache, ForwardObserver observer) {
            this.cache = cache;
            this.observer = observer;
        }

        /** Feeds tokens and returns the last one's logits as a fresh array. */
        float[] forward(int[] tokens) {
            steps++;
            return cache.feed(model, tokens, observer);
        }
    }
}
