package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.generate.GenerationConfig;
import dev.moe4j.model.generate.SamplingConfig;
import dev.moe4j.model.generate.SamplingRequest;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/**
 * The decoding flags generate and chat share. A flag wins over the model's generation_config.json, which wins
 * over transformers' defaults (greedy; when sampling, temperature 1 and top-k 50).
 */
final class SamplingOptions {
    @Option(names = "--max-tokens", paramLabel = "N",
            description = "most tokens to generate (default: generation_config.json max_new_tokens, else "
                    + SamplingRequest.DEFAULT_MAX_NEW_TOKENS + ")")
    Integer maxTokens;

    @Option(names = "--greedy", description = "always take the most likely token (overrides do_sample and the"
            + " sampling flags)")
    boolean greedy;

    @Option(names = "--sample", description = "sample even if generation_config.json says do_sample false")
    boolean sample;

    @Option(names = "--temperature", paramLabel = "T",
            description = "divide the logits by T before sampling; 0 means greedy. Implies --sample")
    Double temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "sample among the K most likely tokens; 0 = all."
            + " Implies --sample")
    Integer topK;

    @Option(names = "--top-p", paramLabel = "P", description = "sample among the most likely tokens whose"
            + " probabilities add up to P (nucleus); 1 = all. Implies --sample")
    Double topP;

    @Option(names = "--min-p", paramLabel = "P", description = "drop tokens less likely than P times the most likely"
            + " one; 0 = none. Implies --sample")
    Double minP;

    @Option(names = "--repetition-penalty", paramLabel = "R",
            description = "divide positive (multiply negative) logits of tokens already in the prompt or output by R;"
                    + " 1 = none; applies to greedy decoding too")
    Double repetitionPenalty;

    @Option(names = "--seed", paramLabel = "N", description = "seed of the sampler: the same seed gives the same"
            + " output (default: a random one, printed at the end)")
    Long seed;

    @Option(names = "--stop", paramLabel = "TEXT", description = "stop when the reply contains TEXT (not shown);"
            + " repeatable")
    List<String> stops = new ArrayList<>();

    /** The sampling that results from transformers' defaults, then generation_config.json, then these flags. */
    SamplingConfig resolve(GenerationConfig generation) {
        check();
        return request().resolve(generation);
    }

    /** The token budget: --max-tokens, else generation_config.json's max_new_tokens, else the default. */
    int maxNewTokens(GenerationConfig generation) {
        return request().maxNewTokens(generation);
    }

    boolean seedGiven() {
        return seed != null;
    }

    private SamplingRequest request() {
        Boolean sampleOrGreedy = greedy ? Boolean.FALSE : sample ? Boolean.TRUE : null;
        return new SamplingRequest(sampleOrGreedy, temperature, topK, topP, minP, repetitionPenalty, seed, maxTokens);
    }

    private void check() {
        if (greedy && sample) {
            throw new BadInputException("--greedy and --sample contradict each other; give one");
        }
        if (maxTokens != null && maxTokens <= 0) {
            throw new BadInputException("--max-tokens must be positive, got " + maxTokens);
        }
        if (temperature != null && !(temperature >= 0 && temperature < Double.POSITIVE_INFINITY)) {
            throw new BadInputException("--temperature must be 0 or more, got " + temperature);
        }
        if (topK != null && topK < 0) {
            throw new BadInputException("--top-k must not be negative, got " + topK);
        }
        if (topP != null && !(topP > 0 && topP <= 1)) {
            throw new BadInputException("--top-p must be in (0, 1], got " + topP);
        }
        if (minP != null && !(minP >= 0 && minP <= 1)) {
            throw new BadInputException("--min-p must be in [0, 1], got " + minP);
        }
        if (repetitionPenalty != null && !(repetitionPenalty > 0 && repetitionPenalty < Double.POSITIVE_INFINITY)) {
            throw new BadInputException("--repetition-penalty must be positive, got " + repetitionPenalty);
        }
        for (String s : stops) {
            if (s.isEmpty()) {
                throw new BadInputException("--stop needs a non-empty text");
            }
        }
    }
}
