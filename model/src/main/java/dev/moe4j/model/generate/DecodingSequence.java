package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.generate.structured.OutputConstraint;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.Arrays;
import java.util.BitSet;

/**
 * One generation as a sequence of steps: it says which tokens to feed next ({@link #pending}), and takes the logits
 * of the last one fed ({@link #accept}) to choose a token, release text and decide whether it is done. Whoever runs
 * the model drives it: the {@link Generator} one sequence at a time, or a {@link BatchScheduler} that feeds many
 * sequences in one forward pass per step. The choices, the text and the stop rules are the same either way.
 *
 * <p>The prompt goes in whole (less what the {@link SequenceCache} already holds), then each chosen token alone,
 * until an end-of-sequence id, a stop string, the token budget or the end of the model's context.
 */
public final class DecodingSequence {
    private final LanguageModel model;
    private final SequenceCache cache;
    private final int[] prompt;
    private final GenerationOptions options;
    private final GenerationListener listener;
    private final Sampler sampler;
    /** The grammar the output follows, or null for free text. */
    private final OutputConstraint constraint;
    private final BitSet seen;
    private final StopStrings stops;
    private final TokenText.Incremental decoder;
    private final StringBuilder shown = new StringBuilder();
    private final java.util.List<TokenLogprob> logprobs = new java.util.ArrayList<>();
    /** The most tokens this generation makes: what was asked, or less where the model's context ends first. */
    private final int budget;
    /** The tokens chosen so far, grown as they come (a waiting request holds no room for its whole budget). */
    private int[] output;
    /** System.nanoTime() when each output token was chosen. */
    private long[] chosenAt;
    private int count;
    private int reused;
    private int[] pending;
    private int next;
    /** The last chosen token went through the model for its routing; its text is released with the next logits. */
    private boolean deferred;
    private Generation.StopReason reason;
    /** Kept for siblings ({@link #startAsCopyOf}) when asked: the logits after the prompt, before any processing. */
    private boolean keepPromptLogits;
    private float[] promptLogits;
    private int steps;
    private long start, prefillEnd, firstToken, end;

    /**
     * A generation of a continuation of {@code prompt} in {@code cache}, checked against the model now; nothing runs
     * until {@link #start}.
     */
    public DecodingSequence(LanguageModel model, TokenText text, SequenceCache cache, int[] prompt,
                            GenerationOptions options, GenerationListener listener) {
        int context = model.config().maxPositions();
        Generator.checkPrompt(prompt, model.config().vocabSize(), context);
        model.checkRouting(options.routing(), RoutingPolicy.Naming.flags());
        if (prompt.length >= context) {
            throw new BadInputException("the prompt has " + prompt.length + " tokens, which leaves no room in the"
                    + " model's context of " + context + " positions (config.json max_position_embeddings)");
        }
        this.model = model;
        this.cache = cache;
        this.prompt = prompt.clone();
        this.options = options;
        this.listener = listener;
        this.sampler = new Sampler(options.sampling());
        this.constraint = options.structured() == null ? null : options.structured().start(options.eosTokenIds());
        this.seen = new BitSet(model.config().vocabSize());
        for (int id : prompt) {
            seen.set(id);
        }
        this.stops = new StopStrings(options.stopStrings());
        this.decoder = text.incremental();
        this.budget = Math.min(options.maxNewTokens(), context - prompt.length);
        this.output = new int[Math.min(budget, 64)];
        this.chosenAt = new long[output.length];
    }

    /** Positions of KV cache this generation may fill: the prompt and its token budget. */
    public int positionsNeeded() {
        return prompt.length + budget;
    }

    /**
     * Makes the cache ready (keeping the longest prefix of the prompt it holds) and returns the prompt tokens to
     * feed first.
     */
    public int[] start() {
        reused = cache.prepare(model, prompt, positionsNeeded(), options.routing());
        pending = Arrays.copyOfRange(prompt, reused, prompt.length);
        start = System.nanoTime();
        return pending;
    }

    /**
     * Keeps the logits that follow the prompt, so that sequences of the same prompt can start from this one's
     * ({@link #startAsCopyOf}) instead of feeding it again. Call before {@link #start}.
     */
    public void keepPromptLogits() {
        keepPromptLogits = true;
    }

    /** Whether the prompt has gone through the model (the first logits were accepted). */
    public boolean prefilled() {
        return steps > 0;
    }

    /**
     * Starts as a sibling of {@code parent}, which has the same prompt, was asked to keep its prompt's logits and has
     * just been prefilled: this sequence's cache becomes a copy of the parent's, and it chooses its first token from
     * the parent's prompt logits with its own sampler. Returns whether it goes on (then {@link #pending} holds that
     * token), as {@link #accept} does.
     */
    public boolean startAsCopyOf(DecodingSequence parent) {
        if (parent.promptLogits == null || !Arrays.equals(parent.prompt, prompt)) {
            throw new IllegalStateException("a sibling needs a prefilled parent of the same prompt that kept its logits");
        }
        cache.copyFrom(parent.cache, positionsNeeded());
        reused = prompt.length;
        start = System.nanoTime();
        return accept(parent.promptLogits.clone());
    }

    /** The time between each two consecutive output tokens being chosen, in nanoseconds, in order. */
    public long[] interTokenNanos() {
        long[] gaps = new long[Math.max(0, count - 1)];
        for (int i = 1; i < count; i++) {
            gaps[i - 1] = chosenAt[i] - chosenAt[i - 1];
        }
        return gaps;
    }

    /** System.nanoTime() when {@link #start} ran (the sequence was admitted), 0 before. */
    public long startedAt() {
        return start;
    }

    /** The tokens to feed next, whose last one's logits {@link #accept} expects; empty once done. */
    public int[] pending() {
        return done() ? new int[0] : pending;
    }

    public SequenceCache cache() {
        return cache;
    }

    public GenerationOptions options() {
        return options;
    }

    /**
     * The log-probabilities of the tokens generated so far, when asked for ({@link GenerationOptions#logprobs}); read
     * it from the thread that drives the sequence (a listener's).
     */
    public java.util.List<TokenLogprob> logprobs() {
        return java.util.Collections.unmodifiableList(logprobs);
    }

    /** Whether the generation has ended (then {@link #result} describes it). */
    public boolean done() {
        return reason != null;
    }

    /**
     * Takes the logits of the last pending token, chooses the next token and releases its text; returns whether
     * the generation goes on (then {@link #pending} holds that token).
     */
    public boolean accept(float[] logits) {
        long now = System.nanoTime();
        if (steps++ == 0) {
            prefillEnd = now;
            if (keepPromptLogits) {
                promptLogits = logits.clone();
            }
        }
        if (deferred) {
            deferred = false;
            if (release()) {
                return finish();
            }
        }
        // the model's own distribution, before the sampler's penalties and truncation change the logits in place
        float[] raw = options.logprobs() >= 0 ? logits.clone() : null;
        next = sampler.next(logits, seen, constraint);
        if (firstToken == 0) {
            firstToken = System.nanoTime();
        }
        if (next < 0 || options.eosTokenIds().contains(next)) {
            reason = Generation.StopReason.EOS; // the end-of-sequence id, or a complete structured output
            return finish();
        }
        if (constraint != null) {
            constraint.accept(next);
        }
        if (count == output.length) {
            output = Arrays.copyOf(output, Math.min(budget, 2 * count));
            chosenAt = Arrays.copyOf(chosenAt, output.length);
        }
        chosenAt[count] = System.nanoTime();
        output[count++] = next;
        seen.set(next);
        if (raw != null) {
            logprobs.add(TokenLogprob.of(raw, next, options.logprobs()));
        }
        pending = new int[] {next};
        if (options.routeEveryToken()) {
            deferred = true;
            return true;
        }
        return release() ? finish() : true;
    }

    /** Releases the last chosen token's text; returns whether the generation ends there. */
    private boolean release() {
        emit(stops.accept(decoder.step(next)), prompt.length + count - 1);
        if (stops.stopped()) {
            reason = Generation.StopReason.STOP_STRING;
            return true;
        }
        if (count == budget) {
            reason = budget < options.maxNewTokens() ? Generation.StopReason.CONTEXT_FULL
                    : Generation.StopReason.MAX_TOKENS;
            return true;
        }
        return false;
    }

    private boolean finish() {
        end = System.nanoTime();
        int lastPosition = prompt.length + Math.max(count, 1) - 1;
        emit(stops.accept(decoder.finish()), lastPosition);
        emit(stops.flush(), lastPosition);
        return false;
    }

    private void emit(String piece, int position) {
        if (!piece.isEmpty()) {
            shown.append(piece);
            listener.onText(piece, position);
        }
    }

    /** The finished generation, with its timings (the first pass counts as prefill, the rest as decoding). */
    public Generation result() {
        if (!done()) {
            throw new IllegalStateException("the generation has not ended");
        }
        var timings = new Generation.Timings(prompt.length - reused, prefillEnd - start, firstToken - start,
                end - firstToken, steps - 1);
        return new Generation(prompt.clone(), Arrays.copyOf(output, count), shown.toString(), reason, timings,
                options.sampling(), logprobs, options.routing());
    }
}
