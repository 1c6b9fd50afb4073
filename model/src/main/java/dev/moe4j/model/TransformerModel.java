package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.KvCache;
import dev.moe4j.model.transformer.Transformer;

/**
 * A {@link Transformer} ready for generation: next-token logits against a KV cache, in an inference graph, over
 * weights (mapped checkpoint files, or copies in memory) that are released on {@link #close}.
 */
public final class TransformerModel implements LanguageModel {
    private final Transformer transformer;
    private final AutoCloseable weights;

    /** @param weights what to release on close (the mapped checkpoint or the weights' copies), or null */
    public TransformerModel(Transformer transformer, AutoCloseable weights) {
        this.transformer = transformer;
        this.weights = weights;
    }

    /** Whether the weights are copies in memory ({@link WeightMemory#COPIED}) rather than views of mapped files. */
    public boolean weightsCopied() {
        return weights instanceof dev.moe4j.core.ResidentMemory;
    }

    /** The model itself, for scoring whole sequences or training. */
    public Transformer transformer() {
        return transformer;
    }

    @Override
    public ModelConfig config() {
        return transformer.config();
    }

    @Override
    public InferenceState newState(int maxTokens) {
        int limit = config().maxPositions();
        if (maxTokens <= 0 || maxTokens > limit) {
            throw new BadInputException("a sequence of " + maxTokens + " positions does not fit this model, which "
                    + "was configured for 1 to " + limit + " (max_position_embeddings)");
        }
        return transformer.newCache(maxTokens);
    }

    @Override
    public Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer) {
        if (!(state instanceof KvCache cache)) {
            throw new IllegalArgumentException("a state from another model: " + state);
        }
        int vocab = config().vocabSize();
        for (int t : tokens) {
            if (t < 0 || t >= vocab) {
                throw new BadInputException("token id " + t + " is outside the model's vocabulary of " + vocab);
            }
        }
        // Device memory of the pass is released when it ends; the logits come back as a host F32 copy.
        transformer.device().attach();
        try (var scope = MemoryScope.open()) {
            Tensor logits = transformer.forward(Graph.inference(), cache, tokens, lastOnly, observer).logits().value();
            if (logits.isHost()) {
                return logits;
            }
            // widened on the device: a vocabulary's BF16 values converted one by one on the host cost a decoding step
            return logits.device().backend().convert(logits, DType.F32).toHost();
        }
    }

    @Override
    public void close() {
        if (weights != null) {
            try {
                weights.close();
            } catch (Exception e) {
                throw new IllegalStateException("could not release the model's weights", e);
            }
        }
    }
}
