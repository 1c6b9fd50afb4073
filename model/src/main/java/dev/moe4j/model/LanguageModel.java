package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.BadInputException;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.List;

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

    /**
     * One decoding step for several sequences: feeds {@code tokens.get(i)} at the next positions of
     * {@code states.get(i)} (advancing each) and returns each sequence's last-token logits, [sequences, vocab]. A
     * model may run them as one batch, which is what serving many users at once rests on: every weight read serves
     * all of them. This default feeds them one at a time.
     */
    default Tensor forward(List<InferenceState> states, List<int[]> tokens) {
        if (states.size() != tokens.size() || states.isEmpty()) {
            throw new IllegalArgumentException(states.size() + " states for " + tokens.size() + " token lists");
        }
        int vocab = config().vocabSize();
        float[] out = new float[states.size() * vocab];
        for (int i = 0; i < states.size(); i++) {
            Tensor logits = forward(states.get(i), tokens.get(i), true, null);
            System.arraycopy(logits.toFloatArray(), 0, out, i * vocab, vocab);
        }
        return Tensor.of(out, states.size(), vocab);
    }

    /**
     * Refuses, in one line naming the option as {@code naming} says, a routing policy this model cannot follow: one
     * that asks for more experts than it has, masks what does not exist, or any policy for a model without MoE
     * layers. The trained routing always passes.
     */
    default void checkRouting(RoutingPolicy policy, RoutingPolicy.Naming naming) {
        if (!policy.isTrained()) {
            throw new BadInputException("routing policies change how MoE layers route; this model has none ("
                    + policy + ")");
        }
    }

    /** Bytes of KV cache one position of a sequence takes (what a state of capacity c holds: c times this); 0 if unknown. */
    default long kvBytesPerPosition() {
        return 0;
    }

    /**
     * Keeps the keys and values of sequences' beginnings, up to {@code bytes} beyond what running sequences hold, so
     * that a later sequence beginning alike takes them instead of computing them ({@link InferenceState#takeCachedPrefix});
     * 0 turns it off. Returns whether the model keeps them: not where the routing of a token depends on others in its
     * batch, nor on a GPU, nor for a model that has no such cache.
     */
    default boolean cachePrefixes(long bytes) {
        return false;
    }

    /** Whether the model keeps sequences' beginnings ({@link #cachePrefixes}). */
    default boolean cachingPrefixes() {
        return false;
    }

    /** KV cache memory in blocks, for telemetry: held by sequences, kept by the prefix cache; null if not paged. */
    default KvUsage kvUsage() {
        return null;
    }

    /** Blocks of KV cache of {@code blockPositions} positions each, and the bytes the model allocated for them. */
    record KvUsage(int heldBlocks, int cachedBlocks, int blockPositions, long allocatedBytes) {
    }

    /** Hears, after every forward pass, how many tokens each MoE layer routed to each of its experts. */
    @FunctionalInterface
    interface ExpertLoads {
        /** {@code tokens[e]}: the rows expert {@code e} of decoder layer {@code layer} computed in one pass. */
        void onPass(int layer, int[] tokens);
    }

    /**
     * Counts every pass's routing into {@code loads} from now on (a server's telemetry), or stops with null. Models
     * without experts, and stand-ins, have nothing to report.
     */
    default void countExpertLoads(ExpertLoads loads) {
    }

    /** Releases mapped weights; the model must not be used afterwards. */
    @Override
    void close();
}
