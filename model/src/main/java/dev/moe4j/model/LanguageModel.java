package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.config.ModelConfig;

/**
 * A causal language model ready to run: next-token logits for token ids, decoding against a KV cache. This is
 * what {@code generate}, {@code score}, {@code chat} and the benchmarks drive, whatever the architecture.
 */
public interface LanguageModel extends AutoCloseable {
    ModelConfig config();

    /** A fresh decoding state (the KV cache) for sequences of up to {@code maxTokens} positions. */
    InferenceState newState(int maxTokens);

    /**
     * Feeds {@code tokens} at the next positions of {@code state} (advancing it) and returns their logits,
     * [tokens.length, vocab], or only the last token's, [1, vocab], when {@code lastOnly}. {@code observer} (may
     * be null) hears each layer's hidden states, router logits and routing decisions as they are computed.
     */
    Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer);

    /** Releases mapped weights; the model must not be used afterwards. */
    @Override
    void close();
}
