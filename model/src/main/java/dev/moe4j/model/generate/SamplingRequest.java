package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;

import java.security.SecureRandom;

/**
 * The decoding settings a caller asks for, laid over a model's generation_config.json, which is laid over
 * transformers' defaults (greedy; when sampling, temperature 1 and top-k 50). The command line's flags and the
 * server's request fields both come through here, so that the same request decodes the same way from either.
 * Every component is optional (null: not asked for); values are checked by the caller, which knows what to call
 * them (a flag, a JSON field).
 *
 * @param sample            true: sample even if generation_config.json says greedy (a temperature of 0 still
 *                          means greedy); false: greedy, whatever else is asked
 * @param temperature       0 means greedy; a positive value turns sampling on
 * @param topK              turns sampling on; 0 keeps every token
 * @param topP              turns sampling on; 1 keeps every token
 * @param minP              turns sampling on; 0 keeps every token
 * @param repetitionPenalty applies to greedy decoding too
 * @param presencePenalty   OpenAI's, in [-2, 2]; applies to greedy decoding too
 * @param frequencyPenalty  OpenAI's, in [-2, 2]; applies to greedy decoding too
 * @param seed              the sampler's seed; without one a random seed is drawn (and reported in the result)
 * @param maxNewTokens      the token budget; without one generation_config.json's max_new_tokens, else
 *                          {@link #DEFAULT_MAX_NEW_TOKENS}
 */
public record SamplingRequest(Boolean sample, Double temperature, Integer topK, Double topP, Double minP,
                              Double repetitionPenalty, Double presencePenalty, Double frequencyPenalty, Long seed,
                              Integer maxNewTokens) {
    /** The token budget when neither the caller nor generation_config.json sets one. */
    public static final int DEFAULT_MAX_NEW_TOKENS = 256;

    /** Asks for nothing: the model's generation_config.json decides, else transformers' defaults. */
    public static SamplingRequest none() {
        return new SamplingRequest(null, null, null, null, null, null, null, null);
    }

    /** Without OpenAI's presence and frequency penalties. */
    public SamplingRequest(Boolean sample, Double temperature, Integer topK, Double topP, Double minP,
                           Double repetitionPenalty, Long seed, Integer maxNewTokens) {
        this(sample, temperature, topK, topP, minP, repetitionPenalty, null, null, seed, maxNewTokens);
    }

    /** The sampling that results from the defaults, then {@code generation}, then this request. */
    public SamplingConfig resolve(GenerationConfig generation) {
        SamplingConfig c;
        try {
            c = SamplingConfig.of(generation);
        } catch (IllegalArgumentException e) {
            throw new BadInputException(GenerationConfig.FILE + ": " + e.getMessage());
        }
        try {
            if (Boolean.TRUE.equals(sample) || topK != null || topP != null || minP != null
                    || (temperature != null && temperature > 0)) {
                c = c.withSample(true);
            }
            if (temperature != null) {
                c = temperature == 0 ? c.withSample(false) : c.withTemperature(temperature);
            }
            if (topK != null) {
                c = c.withTopK(topK);
            }
            if (topP != null) {
                c = c.withTopP(topP);
            }
            if (minP != null) {
                c = c.withMinP(minP);
            }
            if (repetitionPenalty != null) {
                c = c.withRepetitionPenalty(repetitionPenalty);
            }
            if (presencePenalty != null || frequencyPenalty != null) {
                c = c.withPenalties(presencePenalty != null ? presencePenalty : 0,
                        frequencyPenalty != null ? frequencyPenalty : 0);
            }
        } catch (IllegalArgumentException e) {
            throw new BadInputException(e.getMessage());
        }
        if (Boolean.FALSE.equals(sample)) {
            c = c.withSample(false);
        }
        return c.withSeed(seed != null ? seed : new SecureRandom().nextLong());
    }

    /** The token budget: this request's, else generation_config.json's max_new_tokens, else the default. */
    public int maxNewTokens(GenerationConfig generation) {
        if (maxNewTokens != null) {
            return maxNewTokens;
        }
        return generation.maxNewTokens().orElse(DEFAULT_MAX_NEW_TOKENS);
    }
}
