package dev.moe4j.model.config;

import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.Noise;

/**
 * The parameters of a model, counted from its config alone: the total that must be loaded (the "sparse" count)
 * and the active count used for each token, as MoE papers and model cards state them, with a breakdown.
 *
 * <p>Convention: the embedding matrix and the LM head are both included in the total and in the active count
 * (once when they are tied). Mixtral-8x7B (46.7B / 12.9B), Qwen3-30B-A3B (30.5B / 3.3B, truncated), OLMoE-1B-7B
 * (6.9B / 1.3B) and DeepSeek-V3 (671B / 37B, truncated) publish their figures this way. gpt-oss counts active
 * parameters without the input embedding, since a lookup does no arithmetic: 116.8B / 5.1B is
 * {@link #total()} / {@link #activeWithoutInputEmbedding()}. DeepSeek-V3's multi-token-prediction module is not
 * counted, as it is not part of the model's forward pass.
 *
 * <p>A router counts its projection and biases; norms count every RMSNorm weight, including the q/k norms and
 * the norms inside latent attention; shared experts include the shared-expert gate.
 *
 * @param activeRoutedExperts the routed-expert parameters one token uses: top-k experts in every MoE layer (for
 *                            expert choice and Soft MoE, whose tokens use a varying number, k as configured)
 */
public record ParameterCount(long embeddings, long lmHead, long attention, long norms, long router,
                             long routedExperts, long activeRoutedExperts, long sharedExperts, long denseMlps) {
    /** How the counts treat the embeddings, in words, for reports. */
    public static final String CONVENTION = "embeddings and LM head included in both";

    /** Counts the parameters of a model described by {@code config}. */
    public static ParameterCount of(ModelConfig config) {
        long hidden = config.hiddenSize();
        long embeddings = (long) config.vocabSize() * hidden;
        long lmHead = config.tieEmbeddings() ? 0 : embeddings;

        long attentionPerLayer = attention(config.attention(), hidden);
        long normsPerLayer = 2 * hidden + attentionNorms(config.attention(), config.norms().qkNorm());
        int layers = config.numLayers();
        int moeLayers = config.numMoeLayers();
        int denseLayers = layers - moeLayers;

        long router = 0;
        long routed = 0;
        long activeRouted = 0;
        long shared = 0;
        if (config.moe().isPresent()) {
            MoeConfig moe = config.moe().get();
            long inter = moe.intermediate();
            // A gated expert has gate, up and down matrices (biases on each with expertBias); a plain one up and down.
            long expert = moe.ffn().gated()
                    ? 3 * hidden * inter + (moe.expertBias() ? 2 * inter + hidden : 0)
                    : 2 * hidden * inter + (moe.expertBias() ? inter + hidden : 0);
            long routerRows = moe.router() == RouterKind.SOFT ? (long) moe.experts() * moe.slotsPerExpert()
                    : moe.experts();
            long routerPerLayer = routerRows * hidden
                    + (moe.routerBias() ? moe.experts() : 0)
                    + (moe.selectionBias() ? moe.experts() : 0)
                    + (moe.noise().kind() == Noise.Kind.LEARNED_GAUSSIAN ? (long) moe.experts() * hidden : 0)
                    + (moe.router() == RouterKind.SOFT && moe.softNormalize() ? 1 : 0);
            long sharedPerLayer = (moe.ffn().gated() ? 3 : 2) * hidden * moe.sharedIntermediate()
                    + (moe.sharedGate() ? hidden : 0);
            router = moeLayers * routerPerLayer;
            routed = moeLayers * moe.experts() * expert;
            activeRouted = moeLayers * moe.topK() * expert;
            shared = moeLayers * sharedPerLayer;
        }
        long dense = denseLayers * 3 * hidden * config.denseIntermediateSize();
        return new ParameterCount(embeddings, lmHead, layers * attentionPerLayer, layers * normsPerLayer + hidden,
                router, routed, activeRouted, shared, dense);
    }

    private static long attention(AttentionConfig attention, long hidden) {
        return switch (attention) {
            case AttentionConfig.Standard a -> {
                long q = (long) a.numHeads() * a.headDim();
                long kv = (long) a.numKvHeads() * a.headDim();
                long weights = hidden * q + 2 * hidden * kv + q * hidden;
                long biases = (a.qkvBias() ? q + 2 * kv : 0) + (a.outputBias() ? hidden : 0);
                yield weights + biases + (a.sinks() ? a.numHeads() : 0);
            }
            case AttentionConfig.Latent a -> {
                long heads = a.numHeads();
                long query = a.qLoraRank() > 0
                        ? hidden * a.qLoraRank() + (a.bias() ? a.qLoraRank() : 0)
                                + (long) a.qLoraRank() * heads * a.qkHeadDim()
                        : hidden * heads * a.qkHeadDim();
                long kvDown = hidden * (a.kvLoraRank() + a.qkRopeHeadDim())
                        + (a.bias() ? a.kvLoraRank() + a.qkRopeHeadDim() : 0);
                long kvUp = (long) a.kvLoraRank() * heads * (a.qkNopeHeadDim() + a.vHeadDim());
                long output = heads * a.vHeadDim() * hidden + (a.bias() ? hidden : 0);
                yield query + kvDown + kvUp + output;
            }
        };
    }

    private static long attentionNorms(AttentionConfig attention, QkNorm qkNorm) {
        return switch (attention) {
            case AttentionConfig.Standard a -> switch (qkNorm) {
                case NONE -> 0;
                case PER_HEAD -> 2L * a.headDim();
                case WHOLE_PROJECTION -> (long) (a.numHeads() + a.numKvHeads()) * a.headDim();
            };
            case AttentionConfig.Latent a -> a.qLoraRank() + a.kvLoraRank();
        };
    }

    /** Every parameter that must be loaded. */
    public long total() {
        return embeddings + lmHead + attention + norms + router + routedExperts + sharedExperts + denseMlps;
    }

    /** The parameters one token uses: all but the routed experts it was not sent to. */
    public long active() {
        return total() - routedExperts + activeRoutedExperts;
    }

    /**
     * {@link #active()} without the input embedding, whose lookup does no arithmetic (gpt-oss's convention). With
     * tied embeddings the matrix still serves as the LM head, so nothing is taken off.
     */
    public long activeWithoutInputEmbedding() {
        return lmHead == 0 ? active() : active() - embeddings;
    }
}
