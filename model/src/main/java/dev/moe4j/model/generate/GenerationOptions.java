package dev.moe4j.model.generate;

import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.generate.structured.StructuredOutput;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.List;
import java.util.Set;

/**
 * What one generation is asked to do.
 *
 * @param maxNewTokens    the most tokens to generate (fewer when the model's context ends first)
 * @param sampling        how each token is chosen
 * @param eosTokenIds     ids that end the reply; they are neither shown nor part of the output
 * @param stopStrings     texts that end the reply when they appear in it; they are not shown nor part of the text
 * @param observer        hears every forward pass (routing, hidden states); may be null
 * @param routeEveryToken feed every generated token through the model before its text is released, so that the
 *                        observer has heard its routing by then (the last token costs one more forward pass)
 * @param logprobs        record each generated token's log-probability with this many most likely alternatives
 *                        (0: the token's alone); -1 records none
 * @param structured      what the output must be (a JSON schema's shape), or null for free text
 * @param routing         how the MoE layers route this generation's tokens (checked against the model by
 *                        {@code LanguageModel.checkRouting}); {@link RoutingPolicy#TRAINED} as trained
 */
public record GenerationOptions(int maxNewTokens, SamplingConfig sampling, Set<Integer> eosTokenIds,
                                List<String> stopStrings, ForwardObserver observer, boolean routeEveryToken,
                                int logprobs, StructuredOutput structured, RoutingPolicy routing) {
    public GenerationOptions {
        java.util.Objects.requireNonNull(routing, "routing");
        if (maxNewTokens <= 0) {
            throw new IllegalArgumentException("maxNewTokens must be positive, got " + maxNewTokens);
        }
        if (logprobs < -1) {
            throw new IllegalArgumentException("logprobs must be -1 (none) or more, got " + logprobs);
        }
        eosTokenIds = Set.copyOf(eosTokenIds);
        stopStrings = List.copyOf(stopStrings);
    }

    /** Free text, routed as trained. */
    public GenerationOptions(int maxNewTokens, SamplingConfig sampling, Set<Integer> eosTokenIds,
                             List<String> stopStrings, ForwardObserver observer, boolean routeEveryToken,
                             int logprobs) {
        this(maxNewTokens, sampling, eosTokenIds, stopStrings, observer, routeEveryToken, logprobs, null,
                RoutingPolicy.TRAINED);
    }

    /** These options with the output constrained to {@code structured} (null: free text). */
    public GenerationOptions withStructured(StructuredOutput structured) {
        return new GenerationOptions(maxNewTokens, sampling, eosTokenIds, stopStrings, observer, routeEveryToken,
                logprobs, structured, routing);
    }

    /** These options with the MoE layers routing by {@code policy}. */
    public GenerationOptions withRouting(RoutingPolicy policy) {
        return new GenerationOptions(maxNewTokens, sampling, eosTokenIds, stopStrings, observer, routeEveryToken,
                logprobs, structured, policy);
    }

    /** Without log-probabilities. */
    public GenerationOptions(int maxNewTokens, SamplingConfig sampling, Set<Integer> eosTokenIds,
                             List<String> stopStrings, ForwardObserver observer, boolean routeEveryToken) {
        this(maxNewTokens, sampling, eosTokenIds, stopStrings, observer, routeEveryToken, -1);
    }

    /** Greedy decoding of up to {@code maxNewTokens}, stopping at the given EOS ids, with nobody listening in. */
    public static GenerationOptions greedy(int maxNewTokens, Set<Integer> eosTokenIds) {
        return new GenerationOptions(maxNewTokens, SamplingConfig.greedy(), eosTokenIds, List.of(), null, false);
    }
}
