package dev.moe4j.model.transformer;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.Device;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.router.RouterGrads;
import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.TopKRouter;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A decoder-only mixture-of-experts transformer, the one implementation of every supported architecture: the
 * families differ only in their {@link ModelConfig} (attention kind, norms, biases, which layers are MoE, the
 * MoE layer's options) and in how their checkpoints name the weights. Written once against {@link Graph}, the
 * same code trains (a training graph records the backward steps), scores whole sequences, and decodes against a
 * {@link KvCache}.
 *
 * <p>token ids → embedding → L × [x + attention(RMSNorm(x)); h + FFN(RMSNorm(h))] → RMSNorm → LM head, where
 * FFN is a dense gated MLP or the moe module's MoE layer.
 */
public final class Transformer {
    private final ModelConfig config;
    private final Var embedding;
    private final Var finalNorm;
    private final Var lmHead;
    private final List<DecoderLayer> layers = new ArrayList<>();
    private final float eps;
    private final Map<String, Var> weights = new LinkedHashMap<>();
    /** The adapters outside the MoE layers (attention, by their full names); the MoE layers hold their own. */
    private final Map<String, Parameter> adapters = new LinkedHashMap<>();
    private final ExpertStorage expertStorage;
    /** The KV memory of this model's sequences, made on first use. */
    private KvBlocks kvBlocks;
    /** The coefficient of transformers' balance loss over all MoE layers at once; 0 when the layers own their losses. */
    private final double crossLayerBalance;

    /** Builds the model over weights from {@code source}, which checks each one as it is asked for. */
    public Transformer(ModelConfig config, WeightSource source) {
        this.config = config;
        this.eps = (float) config.norms().eps();
        this.expertStorage = source.expertStorage();
        WeightSource recording = new WeightSource() {
            @Override
            public Var weight(String name, int... shape) {
                Var v = source.weight(name, shape);
                weights.put(name, v);
                return v;
            }

            @Override
            public ExpertStorage expertStorage() {
                return source.expertStorage();
            }

            @Override
            public Lora adapter(String name, int out, int in) {
                Lora l = source.adapter(name, out, in);
                if (l != null) {
                    String base = adapterName(name);
                    adapters.put(base + ".lora_a", requireParameter(l.a(), base));
                    adapters.put(base + ".lora_b", requireParameter(l.b(), base));
                }
                return l;
            }
        };
        int hidden = config.hiddenSize();
        this.embedding = recording.weight("embed_tokens.weight", config.vocabSize(), hidden);
        Rotary rotary = new Rotary(config.rope(), rotaryDim(config), config.maxPositions(), config.dtype());
        this.crossLayerBalance = crossLayerBalance(config);
        MoeConfig layerMoe = config.moe().map(m -> crossLayerBalance == 0 ? m : m.toBuilder()
                .losses(m.losses().stream().filter(t -> !t.loss().equals(TRANSFORMERS_BALANCE)).toList()).build())
                .orElse(null);
        for (int i = 0; i < config.numLayers(); i++) {
            layers.add(new DecoderLayer(config, i, recording, source, rotary, layerMoe));
        }
        this.finalNorm = recording.weight("norm.weight", hidden);
        this.lmHead = config.tieEmbeddings() ? embedding : recording.weight("lm_head.weight", config.vocabSize(), hidden);
    }

    /**
     * A model over {@code source}'s weights copied to {@code backend}'s device: matrices in its activation dtype
     * (BF16 on a GPU) for inference, or trainable F32 parameters when {@code trainable}. The same code then runs
     * there; routing state the host moves stays on the host.
     */
    public static Transformer placed(ModelConfig config, WeightSource source, Backend backend, boolean trainable) {
        return new Transformer(config, new PlacedWeights(source, backend, trainable, config.moe()));
    }

    /**
     * The dtype weight {@code name} (of {@code rank} dimensions) takes when {@link #placed} on {@code backend} for
     * inference: the activation dtype for matrices, F32 for vectors, biases and the routers' weights.
     */
    public static DType placedType(String name, int rank, Backend backend) {
        return PlacedWeights.dtype(name, rank, backend, false);
    }

    /**
     * This model's weights as a {@link WeightSource} by moe4j's names, as they are now (stacked experts when it was
     * initialised or loaded for training): {@link #placed} copies it to another device.
     */
    public WeightSource weights() {
        Map<String, Tensor> all = tensors();
        ExpertStorage storage = expertStorage;
        return new WeightSource() {
            @Override
            public Var weight(String name, int... shape) {
                Tensor t = all.get(name);
                if (t == null || !t.hasShape(shape)) {
                    throw new IllegalArgumentException("no weight " + name + " of shape " + Arrays.toString(shape)
                            + " in " + Transformer.this + (t == null ? "" : " (it is " + t + ")"));
                }
                return Var.constant(t);
            }

            @Override
            public ExpertStorage expertStorage() {
                return storage;
            }
        };
    }

    /** A model with fresh weights for training from scratch, drawn from {@code seed}. */
    public static Transformer initialize(ModelConfig config, long seed) {
        return new Transformer(config, new InitialWeights(config.initializerRange(), seed));
    }

    private static final SwitchLoss TRANSFORMERS_BALANCE = new SwitchLoss(SwitchLoss.Form.TRANSFORMERS);

    /**
     * A Hugging Face family's balance loss is transformers' load_balancing_loss_func over the router logits of all
     * layers taken together, so a model of such a family trains with that form; moe4j's own models keep the
     * per-layer losses of their MoeConfig.
     */
    private static double crossLayerBalance(ModelConfig config) {
        if (config.family().equals(ModelConfig.CUSTOM_FAMILY) || config.moe().isEmpty()) {
            return 0;
        }
        return config.moe().get().losses().stream().filter(t -> t.loss().equals(TRANSFORMERS_BALANCE))
                .mapToDouble(LossTerm::coefficient).sum();
    }

    private static int rotaryDim(ModelConfig config) {
        return switch (config.attention()) {
            // transformers rotates int(head_dim · partial_rotary_factor) dimensions of each head
            case AttentionConfig.Standard s -> (int) (s.headDim() * config.rope().partialRotaryFactor());
            case AttentionConfig.Latent l -> l.qkRopeHeadDim();
        };
    }

    public ModelConfig config() {
        return config;
    }

    /**
     * The forward pass over {@code sequences} sequences of equal length laid end to end in {@code tokens}
     * (training, scoring): logits for every position. {@code observer} may be null.
     */
    public ForwardPass forward(Graph g, int[] tokens, int sequences, ForwardObserver observer) {
        return forward(g, tokens, sequences, observer, RoutingPolicy.TRAINED);
    }

    /**
     * {@link #forward(Graph, int[], int, ForwardObserver)} with the MoE layers routing by {@code policy} (inference
     * graphs; {@link #checkRouting} first).
     */
    public ForwardPass forward(Graph g, int[] tokens, int sequences, ForwardObserver observer, RoutingPolicy policy) {
        if (sequences <= 0 || tokens.length == 0 || tokens.length % sequences != 0) {
            throw new IllegalArgumentException(tokens.length + " tokens do not form " + sequences
                    + " sequences of equal length");
        }
        return run(g, tokens, Batch.sequences(sequences, tokens.length / sequences, policy), false, observer);
    }

    /** Refuses, in one line naming the option, a routing policy this model's MoE layers cannot follow. */
    public void checkRouting(RoutingPolicy policy, RoutingPolicy.Naming naming) {
        if (policy.isTrained()) {
            return;
        }
        if (config.moe().isEmpty() || moeLayerIndices().isEmpty()) {
            throw new BadInputException("routing policies change how MoE layers route; this model has none ("
                    + policy + ")");
        }
        policy.check(config.moe().get(), moeLayerIndices(), naming);
    }

    /**
     * Feeds {@code tokens} at the next positions of {@code cache} and advances it: logits for every new token,
     * or only the last one's when {@code lastOnly}. Inference only.
     */
    public ForwardPass forward(Graph g, KvCache cache, int[] tokens, boolean lastOnly, ForwardObserver observer) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("no tokens to feed");
        }
        if (cache.position() + tokens.length > cache.capacity()) {
            throw new BadInputException(tokens.length + " more tokens after " + cache.position()
                    + " do not fit the " + cache.capacity() + " positions of this sequence's state");
        }
        cache.prepareWrite(tokens.length);
        ForwardPass pass = run(g, tokens, Batch.cached(cache, tokens.length), lastOnly, observer);
        cache.advance(tokens);
        return pass;
    }

    /**
     * Feeds several sequences at once, {@code tokens.get(i)} at the next positions of {@code caches.get(i)}, and
     * advances each: one pass whose rows go through every matrix and expert together, each sequence attending to
     * its own cache. Logits for every new token in order, or only each sequence's last, [sequences, vocab], when
     * {@code lastOnly}. Inference only; for routers that route each token alone
     * ({@code MoeConfig.routesEachTokenAlone}) this is what feeding the sequences one by one computes.
     */
    public ForwardPass forward(Graph g, List<KvCache> caches, List<int[]> tokens, boolean lastOnly,
                               ForwardObserver observer) {
        if (caches.isEmpty() || caches.size() != tokens.size()) {
            throw new IllegalArgumentException(caches.size() + " caches for " + tokens.size() + " token lists");
        }
        int[] counts = new int[caches.size()];
        int rows = 0;
        for (int i = 0; i < counts.length; i++) {
            KvCache cache = caches.get(i);
            counts[i] = tokens.get(i).length;
            if (counts[i] == 0) {
                throw new IllegalArgumentException("sequence " + i + " has no tokens to feed");
            }
            if (cache.position() + counts[i] > cache.capacity()) {
                throw new BadInputException(counts[i] + " more tokens after " + cache.position()
                        + " do not fit the " + cache.capacity() + " positions of sequence " + i + "'s state");
            }
            for (int j = 0; j < i; j++) {
                if (caches.get(j) == cache) {
                    throw new IllegalArgumentException("sequence " + i + " shares its cache with sequence " + j);
                }
            }
            rows += counts[i];
        }
        int[] all = new int[rows];
        for (int i = 0, at = 0; i < counts.length; at += counts[i], i++) {
            System.arraycopy(tokens.get(i), 0, all, at, counts[i]);
        }
        for (int i = 0; i < counts.length; i++) {
            caches.get(i).prepareWrite(counts[i]);
        }
        ForwardPass pass = run(g, all, Batch.cached(caches, counts), lastOnly, observer);
        for (int i = 0; i < counts.length; i++) {
            caches.get(i).advance(tokens.get(i));
        }
        return pass;
    }

    /** Bytes a KV cache holds per position: every layer's key and value rows, in the device's activation type. */
    public long kvBytesPerPosition() {
        AttentionBlock a = layers.getFirst().attention();
        Backend b = Backend.of(embedding.value());
        return (long) layers.size() * b.activationType().byteCount(a.keyWidth() + a.valueWidth());
    }

    /** A KV cache for one sequence of up to {@code capacity} positions, on the device of the model's weights. */
    public KvCache newCache(int capacity) {
        return new KvCache(kvBlocks(), capacity);
    }

    /**
     * Keeps the KV blocks of sequences' beginnings for later sequences that begin alike, up to {@code bytes} of
     * blocks no running sequence holds (0: off, the default). Host memory only, and only where every token's
     * routing depends on that token alone ({@link MoeConfig#routesEachTokenAlone}); elsewhere it stays off. The
     * cached blocks hold what the weights computed: turn it off before changing them (training).
     */
    public void cachePrefixes(long bytes) {
        long perBlock = Math.max(1, kvBytesPerPosition() * KvBlocks.BLOCK);
        kvBlocks().cachePrefixes((int) Math.min(Integer.MAX_VALUE, bytes / perBlock));
    }

    /** Whether {@link #cachePrefixes} took effect. */
    public boolean cachingPrefixes() {
        return kvBlocks().cachingPrefixes();
    }

    /** The KV memory of this model's sequences: blocks held, blocks kept by the prefix cache, bytes allocated. */
    public LanguageModel.KvUsage kvUsage() {
        KvBlocks b = kvBlocks();
        return new LanguageModel.KvUsage(b.heldBlocks(), b.cachedBlocks(), KvBlocks.BLOCK, b.allocatedBytes());
    }

    private synchronized KvBlocks kvBlocks() {
        if (kvBlocks == null) {
            AttentionBlock a = layers.getFirst().attention();
            kvBlocks = new KvBlocks(Backend.of(embedding.value()), layers.size(), a.keyWidth(), a.valueWidth());
            kvBlocks.allowPrefixes(config.moe().map(MoeConfig::routesEachTokenAlone).orElse(true));
        }
        return kvBlocks;
    }

    /** The device the model's weights are on, where its passes run. */
    public Device device() {
        return embedding.value().device();
    }

    /**
     * Feeds one token to each cache and advances it, as {@link #forward(Graph, List, List, boolean, ForwardObserver)}
     * with only the last logits does, on a device that records work ({@link Device#captures}): each set of caches'
     * step is recorded once and replayed after (see {@link DecodingSteps}). Returns the logits [caches, vocab] as
     * a host F32 copy, or null, having done nothing, where the device does not record or a cache is not one run of
     * device memory; the caller then runs {@link #forward}.
     */
    public Tensor decode(List<KvCache> caches, int[] tokens) {
        if (!device().captures() || caches.isEmpty() || caches.size() != tokens.length) {
            return null;
        }
        for (int i = 0; i < caches.size(); i++) {
            KvCache cache = caches.get(i);
            if (cache.position() + 1 > cache.capacity()) {
                throw new BadInputException("1 more token after " + cache.position() + " does not fit the "
                        + cache.capacity() + " positions of this sequence's state");
            }
            for (int j = 0; j < i; j++) {
                if (caches.get(j) == cache) {
                    throw new IllegalArgumentException("sequence " + i + " shares its cache with sequence " + j);
                }
            }
        }
        device().attach();
        return decodingSteps.decode(this, caches, tokens);
    }

    /** Releases the recorded decoding steps and the device memory they hold. */
    public void releaseDecodingSteps() {
        device().attach();
        decodingSteps.close();
    }

    /** How many sets of caches have a recorded decoding step now (what tests check the recording by). */
    public int recordedDecodingSteps() {
        return decodingSteps.recorded();
    }

    private final DecodingSteps decodingSteps = new DecodingSteps();

    Tensor embeddingTable() {
        return embedding.value();
    }

    ForwardPass run(Graph g, int[] tokens, Batch batch, boolean lastOnly, ForwardObserver observer) {
        ForwardObserver o = observer == null ? NO_OBSERVER : observer;
        Var x = batch.embed(g, embedding, tokens);
        o.onHiddenState(0, observed(observer, x.value()));
        var moe = new ArrayList<MoeResult>();
        var moeLayers = new ArrayList<Integer>();
        for (DecoderLayer layer : layers) {
            DecoderLayer.Output out = layer.forward(g, x, batch);
            x = out.hidden();
            if (out.moe() != null) {
                moe.add(out.moe());
                moeLayers.add(layer.index());
                if (observer != null) {
                    report(observer, layer.index(), out.moe().routing(), batch.positions());
                    Tensor experts = out.moe().expertOutputs();
                    if (experts != null && out.moe().routing().dispatch() != null) {
                        observer.onExpertOutputs(layer.index(), out.moe().routing().dispatch(), experts.toHost());
                    }
                }
            }
            if (layer.index() < layers.size() - 1) {
                o.onHiddenState(layer.index() + 1, observed(observer, x.value()));
            }
        }
        Var h = g.rmsNorm(x, finalNorm, eps);
        o.onHiddenState(layers.size(), observed(observer, h.value()));
        int[] last = batch.lastRows();
        if (lastOnly && last.length == 1 && h.rows() > 1) {
            h = Var.constant(h.value().slice(h.rows() - 1, h.rows()));
        } else if (lastOnly && last.length > 1 && last.length < h.rows()) {
            h = g.embedding(h, last);
        }
        // F32 logits on every device: BF16 would round each by up to 2⁻⁹ of itself, near the 1e-2 parity budget.
        return new ForwardPass(g.matmul(h, lmHead, DType.F32), moe, moeLayers);
    }

    private static final ForwardObserver NO_OBSERVER = new ForwardObserver() {
    };

    /** What an observer is shown of a hidden state: the tensor itself, or its host copy when it is on a GPU. */
    private static Tensor observed(ForwardObserver observer, Tensor hidden) {
        return observer == null ? hidden : hidden.toHost();
    }

    /** Hands a layer's router logits and each token's experts (best first) and gate weights to the observer. */
    private static void report(ForwardObserver o, int layer, Routing r, int[] positions) {
        int n = r.tokens(), e = r.experts();
        o.onRouterLogits(layer, Tensor.of(r.logits(), n, e));
        Dispatch d = r.dispatch();
        if (d == null) {
            return;
        }
        float[] weight = new float[n * e];
        boolean[] served = new boolean[n * e];
        int[] expertOf = d.expertOfRows();
        for (int row = 0; row < d.rows(); row++) {
            weight[d.token()[row] * e + expertOf[row]] += d.weight()[row];
            served[d.token()[row] * e + expertOf[row]] = true;
        }
        int k = r.k();
        for (int t = 0; t < n; t++) {
            var experts = new ArrayList<Integer>();
            if (r.choices() != null) {
                for (int j = 0; j < k; j++) {
                    int ex = r.choices()[t * k + j];
                    if (ex >= 0 && served[t * e + ex]) {
                        experts.add(ex);
                    }
                }
            } else {
                // Expert choice: the experts that took the token, heaviest gate first.
                for (int ex = 0; ex < e; ex++) {
                    if (served[t * e + ex]) {
                        experts.add(ex);
                    }
                }
                final int token = t;
                experts.sort((a, b) -> Float.compare(weight[token * e + b], weight[token * e + a]));
            }
            int[] ids = experts.stream().mapToInt(Integer::intValue).toArray();
            float[] w = new float[ids.length];
            for (int j = 0; j < ids.length; j++) {
                w[j] = weight[t * e + ids[j]];
            }
            o.onRouting(layer, positions[t], ids, w);
        }
    }

    /**
     * The mean next-token cross-entropy of a pass over {@code sequences} sequences: position t of each sequence
     * predicts token t + 1; the last position of a sequence predicts nothing.
     */
    public Var crossEntropy(Graph g, ForwardPass pass, int[] tokens, int sequences) {
        int length = tokens.length / sequences;
        int[] targets = new int[tokens.length];
        for (int r = 0; r < tokens.length; r++) {
            targets[r] = r % length == length - 1 ? Graph.IGNORE : tokens[r + 1];
        }
        return g.crossEntropy(pass.logits(), targets);
    }

    /**
     * The training objective of a pass: {@code objective} is what to back-propagate (mean cross-entropy against
     * {@code targets}, plus, for a Hugging Face family, router_aux_loss_coef times transformers' balance loss over
     * all layers); the per-layer auxiliary losses of a moe4j model enter through the MoE layers' own backward steps,
     * so {@code auxiliary} reports them without adding them to the objective again.
     *
     * @param crossEntropy the mean next-token cross-entropy
     * @param auxiliary    Σ coefficient · auxiliary loss, however the model trains it
     */
    public record Loss(Var objective, double crossEntropy, double auxiliary) {
        /** What the step minimises: cross-entropy plus the weighted auxiliary losses. */
        public double total() {
            return crossEntropy + auxiliary;
        }
    }

    /** The training objective of {@code pass} against {@code targets} (one per row; {@link Graph#IGNORE} skips). */
    public Loss loss(Graph g, ForwardPass pass, int[] targets) {
        return loss(g, pass, targets, null, 1, 1);
    }

    /**
     * The objective of a pass over sequences that may end in padding, weighted for gradient accumulation:
     * {@code crossEntropyWeight} times the mean cross-entropy plus {@code auxiliaryWeight} times the weighted
     * balance loss; the {@link Loss}'s two numbers stay unweighted.
     *
     * @param tokens which rows hold tokens rather than padding (null: all of them). Padding is left out of
     *               transformers' balance loss, as transformers leaves out the positions its attention mask hides;
     *               its targets must be {@link Graph#IGNORE}. The per-layer losses of moe4j's own models see every
     *               row.
     */
    public Loss loss(Graph g, ForwardPass pass, int[] targets, boolean[] tokens, double crossEntropyWeight,
                     double auxiliaryWeight) {
        Var ce = g.crossEntropy(pass.logits(), targets);
        double aux = pass.auxLoss();
        Var objective = crossEntropyWeight == 1 ? ce : g.scale(ce, (float) crossEntropyWeight);
        if (crossLayerBalance > 0 && !pass.moe().isEmpty()) {
            Var balance = balanceLoss(g, pass, tokens);
            Var weighted = g.scale(balance, (float) crossLayerBalance);
            objective = g.add(objective, auxiliaryWeight == 1 ? weighted : g.scale(weighted, (float) auxiliaryWeight));
            aux += crossLayerBalance * balance.value().getFloat(0);
        }
        return new Loss(objective, ce.value().getFloat(0), aux);
    }

    /**
     * transformers' {@code load_balancing_loss_func} over all MoE layers of a pass: the router logits of every
     * layer taken as one batch, softmax, top-k, and E · Σᵢ fᵢ · Pᵢ with fᵢ the fraction of tokens choosing expert
     * i (Σ f = k). This is the auxiliary loss Hugging Face's models add to their training loss, times
     * router_aux_loss_coef; it is not the sum of the per-layer losses, which weigh each layer's own fᵢ.
     */
    public double balanceLoss(ForwardPass pass) {
        return pass.moe().isEmpty() ? 0 : balanceLoss(Graph.inference(), pass).value().getFloat(0);
    }

    /**
     * {@link #balanceLoss(ForwardPass)} as an operation of {@code g}: its backward step hands each MoE layer the
     * gradient of its slice of the concatenated router logits, which the layer's own backward step (recorded
     * earlier, so replayed later) passes into its router.
     */
    public Var balanceLoss(Graph g, ForwardPass pass) {
        return balanceLoss(g, pass, null);
    }

    /**
     * {@link #balanceLoss(Graph, ForwardPass)} over the rows {@code tokens} marks (null: all), as transformers'
     * load_balancing_loss_func computes it under an attention mask: the means over tokens become means over the
     * unmasked ones, in every layer. Padding's router logits get no gradient from it.
     */
    public Var balanceLoss(Graph g, ForwardPass pass, boolean[] tokens) {
        MoeConfig moe = config.moe().orElseThrow();
        int e = moe.experts();
        int rows = pass.moe().getFirst().routing().logits().length / e;
        if (tokens != null && tokens.length != rows) {
            throw new IllegalArgumentException("balanceLoss: " + tokens.length + " token flags for " + rows + " rows");
        }
        int[] kept = keptRows(tokens, rows);
        if (kept.length == 0) {
            return Var.constant(Tensor.vector(0f));
        }
        float[] all = new float[pass.moe().size() * kept.length * e];
        int at = 0;
        for (MoeResult m : pass.moe()) {
            float[] logits = m.routing().logits();
            if (kept.length == rows) {
                System.arraycopy(logits, 0, all, at, logits.length);
                at += logits.length;
            } else {
                for (int r : kept) {
                    System.arraycopy(logits, r * e, all, at, e);
                    at += e;
                }
            }
        }
        int counted = all.length / e;
        // Whatever the layer's own gate, transformers scores this loss with a softmax and its top-k.
        MoeConfig softmax = MoeConfig.builder(moe.hidden(), moe.intermediate(), e, moe.topK()).build();
        var router = new TopKRouter(softmax, Tensor.zeros(e, moe.hidden()), null, null, null);
        Routing routing = router.routeLogits(all, counted);
        boolean trains = g.isTraining() && pass.moe().stream().allMatch(m -> m.context() != null);
        Var out = new Var(Tensor.vector((float) TRANSFORMERS_BALANCE.value(routing)), trains);
        g.onBackward(out, () -> {
            var grads = new RouterGrads(counted, e);
            TRANSFORMERS_BALANCE.backward(routing, out.grad().getFloat(0), grads);
            float[] dLogits = grads.logits();
            int from = 0;
            for (MoeResult m : pass.moe()) {
                float[] layer = new float[rows * e];
                for (int r : kept) {
                    System.arraycopy(dLogits, from, layer, r * e, e);
                    from += e;
                }
                m.context().addRouterLogitGradient(layer);
            }
        });
        return out;
    }

    private static int[] keptRows(boolean[] tokens, int rows) {
        if (tokens == null) {
            int[] all = new int[rows];
            Arrays.setAll(all, i -> i);
            return all;
        }
        int n = 0;
        for (boolean t : tokens) {
            n += t ? 1 : 0;
        }
        int[] kept = new int[n];
        for (int r = 0, k = 0; r < rows; r++) {
            if (tokens[r]) {
                kept[k++] = r;
            }
        }
        return kept;
    }

    /**
     * The weights a trainer may train, by moe4j's names: those of the embedding, attention, norms and dense MLPs as
     * the source gave them (constants when it gave a checkpoint's frozen weights), the adapters outside the MoE
     * layers, and each MoE layer's parameters (router, stacked experts, shared expert and gate, frozen or not, and
     * its adapters). Experts held as separate checkpoint tensors have no parameters and are not listed.
     */
    public Map<String, Var> parameters() {
        var out = new LinkedHashMap<String, Var>();
        weights.forEach((name, v) -> {
            if (!name.contains(".moe.")) {
                out.put(name, v);
            }
        });
        out.putAll(adapters);
        for (DecoderLayer layer : layers) {
            if (layer.moe() != null) {
                String prefix = "layers." + layer.index() + ".moe.";
                layer.moe().layer().parameters().forEach(p -> out.put(prefix + p.name(), p));
            }
        }
        return Collections.unmodifiableMap(out);
    }

    /**
     * The LoRA adapters by their full names ({@code layers.N.attention.q_proj.lora_a}, {@code
     * layers.N.moe.experts.gate_up_proj.lora_b}, ...), in layer order; empty for a model without adapters.
     */
    public Map<String, Parameter> adapters() {
        var out = new LinkedHashMap<String, Parameter>();
        for (DecoderLayer layer : layers) {
            String p = "layers." + layer.index() + ".";
            adapters.forEach((name, a) -> {
                if (name.startsWith(p)) {
                    out.put(name, a);
                }
            });
            if (layer.moe() != null) {
                layer.moe().layer().adapterParameters().forEach(a -> out.put(p + "moe." + a.name(), a));
            }
        }
        return Collections.unmodifiableMap(out);
    }

    /** The adapters' base name for a weight: {@code layers.0.attention.q_proj.weight} → {@code layers.0.attention.q_proj}. */
    public static String adapterName(String weight) {
        return weight.endsWith(".weight") ? weight.substring(0, weight.length() - ".weight".length()) : weight;
    }

    private static Parameter requireParameter(Var v, String name) {
        if (!(v instanceof Parameter p)) {
            throw new IllegalArgumentException(name + ": an adapter's matrices must be parameters");
        }
        return p;
    }

    /** The MoE layers in layer order (a trainer reseeds their noise and balances their selection bias). */
    public List<MoeLayer> moeLayers() {
        return layers.stream().filter(l -> l.moe() != null).map(l -> l.moe().layer()).toList();
    }

    /** The decoder-layer index of each of {@link #moeLayers()}. */
    public List<Integer> moeLayerIndices() {
        return layers.stream().filter(l -> l.moe() != null).map(DecoderLayer::index).toList();
    }

    /** How this model holds its experts (as its weight source gave them), which {@link #tensors} reflects. */
    public ExpertStorage expertStorage() {
        return expertStorage;
    }

    /** Every tensor of the model by moe4j's names, as a checkpoint holds them (MoE buffers included). */
    public Map<String, Tensor> tensors() {
        var out = new LinkedHashMap<String, Tensor>();
        weights.forEach((name, v) -> {
            if (!name.contains(".moe.")) {
                out.put(name, v.value());
            }
        });
        for (DecoderLayer layer : layers) {
            if (layer.moe() != null) {
                out.putAll(layer.moe().tensors());
            }
        }
        return Collections.unmodifiableMap(out);
    }

    @Override
    public String toString() {
        return "Transformer[" + config.family() + ", " + layers.size() + " layers, hidden " + config.hiddenSize() + "]";
    }
}
