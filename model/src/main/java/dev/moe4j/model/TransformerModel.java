package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.ResidentMemory;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.KvCache;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.RoutingPolicy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link Transformer} ready for generation: next-token logits against a KV cache, in an inference graph, over
 * weights (mapped checkpoint files, or copies in memory) that are released on {@link #close}.
 */
public final class TransformerModel implements LanguageModel {
    private final Transformer transformer;
    private final AutoCloseable weights;
    private final Path checkpoint;
    private boolean firstLogitsSeen;
    private volatile ExpertLoads expertLoads;
    private boolean checkpointScanned;

    /** @param weights what to release on close (the mapped checkpoint or the weights' copies), or null */
    public TransformerModel(Transformer transformer, AutoCloseable weights) {
        this(transformer, weights, null);
    }

    /**
     * @param weights    what to release on close (the mapped checkpoint or the weights' copies), or null
     * @param checkpoint the folder the weights came from: logits that are not finite are traced to the weight at
     *                   fault there, which is refused by name; null when the weights came from elsewhere
     */
    public TransformerModel(Transformer transformer, AutoCloseable weights, Path checkpoint) {
        this.transformer = transformer;
        this.weights = weights;
        this.checkpoint = checkpoint;
    }

    /** Whether the weights are copies in memory ({@link WeightMemory#COPIED}) rather than views of mapped files. */
    public boolean weightsCopied() {
        return weights instanceof ResidentMemory;
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
        KvCache cache = cacheOf(state);
        checkTokens(tokens);
        if (tokens.length == 1 && recordable(observer, List.of(cache))) {
            Tensor logits = transformer.decode(List.of(cache), tokens);
            if (logits != null) {
                requireFiniteWeights(logits);
                return logits;
            }
        }
        return hostLogits(() -> transformer.forward(Graph.inference(), cache, tokens, lastOnly, observer));
    }

    /**
     * One pass over every sequence's new tokens when each token is routed by its own scores alone (then the batch
     * computes what feeding them one by one computes); one at a time otherwise, since capacity limits, expert choice
     * and Soft MoE would let the sequences of a batch change each other's routing.
     */
    @Override
    public Tensor forward(List<InferenceState> states, List<int[]> tokens) {
        if (states.size() == 1 || !config().moe().map(MoeConfig::routesEachTokenAlone).orElse(true)) {
            return LanguageModel.super.forward(states, tokens);
        }
        var caches = new ArrayList<KvCache>(states.size());
        for (InferenceState state : states) {
            caches.add(cacheOf(state));
        }
        tokens.forEach(this::checkTokens);
        if (tokens.stream().allMatch(t -> t.length == 1) && recordable(null, caches)) {
            int[] next = tokens.stream().mapToInt(t -> t[0]).toArray();
            Tensor logits = transformer.decode(caches, next);
            if (logits != null) {
                requireFiniteWeights(logits);
                return logits;
            }
        }
        return hostLogits(() -> transformer.forward(Graph.inference(), caches, tokens, true, null));
    }

    /**
     * Whether a decoding step may take the recorded path ({@link Transformer#decode}): nothing watches the pass (an
     * observer or a load listener needs each pass's host routing) and every sequence routes as trained.
     */
    private boolean recordable(ForwardObserver observer, List<KvCache> caches) {
        return observer == null && expertLoads == null && transformer.device().captures()
                && caches.stream().allMatch(c -> c.routing().isTrained());
    }

    private static KvCache cacheOf(InferenceState state) {
        if (!(state instanceof KvCache cache)) {
            throw new IllegalArgumentException("a state from another model: " + state);
        }
        return cache;
    }

    private void checkTokens(int[] tokens) {
        int vocab = config().vocabSize();
        for (int t : tokens) {
            if (t < 0 || t >= vocab) {
                throw new BadInputException("token id " + t + " is outside the model's vocabulary of " + vocab);
            }
        }
    }

    @Override
    public void checkRouting(RoutingPolicy policy, RoutingPolicy.Naming naming) {
        transformer.checkRouting(policy, naming);
    }

    @Override
    public long kvBytesPerPosition() {
        return transformer.kvBytesPerPosition();
    }

    @Override
    public boolean cachePrefixes(long bytes) {
        transformer.cachePrefixes(bytes);
        return transformer.cachingPrefixes();
    }

    @Override
    public boolean cachingPrefixes() {
        return transformer.cachingPrefixes();
    }

    @Override
    public KvUsage kvUsage() {
        return transformer.kvUsage();
    }

    @Override
    public void countExpertLoads(ExpertLoads loads) {
        this.expertLoads = loads;
    }

    /** Runs a pass and returns its logits as a host F32 copy, checked for weights that are not finite. */
    private Tensor hostLogits(java.util.function.Supplier<ForwardPass> pass) {
        // Device memory of the pass is released when it ends; the logits come back as a host F32 copy.
        transformer.device().attach();
        Tensor host;
        try (var scope = MemoryScope.open()) {
            ForwardPass done = pass.get();
            reportLoads(done);
            Tensor logits = done.logits().value();
            // widened on the device: a vocabulary's BF16 values converted one by one on the host cost a decoding step
            host = logits.isHost() ? logits : logits.device().backend().convert(logits, DType.F32).toHost();
        }
        requireFiniteWeights(host);
        return host;
    }

    /** Tells the load listener, if any, each MoE layer's rows per expert in this pass (host-side routing only). */
    private void reportLoads(ForwardPass pass) {
        ExpertLoads loads = expertLoads;
        if (loads == null) {
            return;
        }
        for (int i = 0; i < pass.moe().size(); i++) {
            var dispatch = pass.moe().get(i).routing().dispatch();
            if (dispatch != null) {
                int[] tokens = new int[dispatch.experts()];
                for (int e = 0; e < tokens.length; e++) {
                    tokens[e] = dispatch.load(e);
                }
                loads.onPass(pass.moeLayers().get(i), tokens);
            }
        }
    }

    /**
     * A NaN or infinite weight shows in the logits of the first pass that reads it (greedy decoding would pick
     * token 0 from NaN, silently): the checkpoint is then searched once for the weight at fault, which is refused
     * by name. Logits are checked on every pass, since an expert is read only when a token is routed to it.
     */
    private void requireFiniteWeights(Tensor logits) {
        boolean everyValue = !firstLogitsSeen;
        firstLogitsSeen = true;
        if (checkpoint == null || checkpointScanned || NonFiniteWeights.finite(logits, everyValue)) {
            return;
        }
        checkpointScanned = true;
        NonFiniteWeights.find(checkpoint).ifPresent(problem -> {
            throw new BadInputException(problem);
        });
    }

    @Override
    public void close() {
        transformer.releaseDecodingSteps();
        if (weights != null) {
            try {
                weights.close();
            } catch (Exception e) {
                throw new IllegalStateException("could not release the model's weights", e);
            }
        }
    }
}
