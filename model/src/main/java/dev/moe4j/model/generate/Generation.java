package dev.moe4j.model.generate;

/**
 * The outcome of one generation.
 *
 * @param promptIds the prompt as fed
 * @param outputIds the generated ids, without the EOS id that ended them (with the tokens of a stop string)
 * @param text      the generated text as shown: special tokens skipped, cut before a stop string
 * @param timings   where the time went
 * @param logprobs  each generated token's log-probability and alternatives, when asked for ({@link
 *                  GenerationOptions#logprobs}); empty otherwise
 * @param routing   how the MoE layers routed its tokens
 */
public record Generation(int[] promptIds, int[] outputIds, String text, StopReason stopReason, Timings timings,
                         SamplingConfig sampling, java.util.List<TokenLogprob> logprobs,
                         dev.moe4j.moe.router.RoutingPolicy routing) {
    public Generation {
        logprobs = java.util.List.copyOf(logprobs);
        java.util.Objects.requireNonNull(routing, "routing");
    }

    /** Routed as trained. */
    public Generation(int[] promptIds, int[] outputIds, String text, StopReason stopReason, Timings timings,
                      SamplingConfig sampling, java.util.List<TokenLogprob> logprobs) {
        this(promptIds, outputIds, text, stopReason, timings, sampling, logprobs,
                dev.moe4j.moe.router.RoutingPolicy.TRAINED);
    }

    /** Without log-probabilities. */
    public Generation(int[] promptIds, int[] outputIds, String text, StopReason stopReason, Timings timings,
                      SamplingConfig sampling) {
        this(promptIds, outputIds, text, stopReason, timings, sampling, java.util.List.of());
    }

    /** Why generation ended. */
    public enum StopReason {
        /** The model produced an end-of-sequence id. */
        EOS,
        /** A stop string appeared in the text. */
        STOP_STRING,
        /** The requested number of new tokens was reached. */
        MAX_TOKENS,
        /** The model's context (its maximum positions) was full before the requested number of tokens. */
        CONTEXT_FULL;

        /** The lower-case name used in JSON and messages. */
        public String label() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /**
     * Prompt tokens that were not fed because the {@link SequenceCache} already held them (0 for a fresh state).
     */
    public int reusedTokens() {
        return promptIds.length - timings.prefillTokens();
    }

    /**
     * @param prefillTokens   prompt tokens fed in the prefill pass: the prompt less what a kept cache held
     * @param prefillNanos    the forward pass over those tokens
     * @param firstTokenNanos from the start until the first token was chosen (prefill plus sampling)
     * @param decodeNanos     from the first token until the end: the one-token forward passes and their sampling
     * @param decodeSteps     forward passes of one token in that time
     */
    public record Timings(int prefillTokens, long prefillNanos, long firstTokenNanos, long decodeNanos,
                          int decodeSteps) {
        /** Prompt tokens per second of prefill, counting those fed. */
        public double prefillTokensPerSecond() {
            return rate(prefillTokens, prefillNanos);
        }

        /** Tokens per second of decoding (one forward pass each). */
        public double decodeTokensPerSecond() {
            return rate(decodeSteps, decodeNanos);
        }

        private static double rate(long count, long nanos) {
            return nanos <= 0 ? 0 : count * 1e9 / nanos;
        }
    }
}
