package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.LanguageModel;

/**
 * Generates text with a {@link LanguageModel}, one sequence at a time: a {@link DecodingSequence} driven by its own
 * forward passes. The prompt goes through the model in one pass (prefill), then each chosen token is fed back alone
 * against the KV cache (decode) until an end-of-sequence id, a stop string, the token budget or the end of the
 * model's context. Text streams to a {@link GenerationListener} as it becomes final. A {@link SequenceCache} kept
 * from an earlier generation spares the prefill the part of the prompt it already holds. A {@link BatchScheduler}
 * runs the same sequences many at a time.
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
        var sequence = new DecodingSequence(model, text, cache, prompt, options, listener);
        int[] feed = sequence.start();
        while (sequence.accept(cache.feed(model, feed, options.observer()))) {
            feed = sequence.pending();
        }
        return sequence.result();
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
}
