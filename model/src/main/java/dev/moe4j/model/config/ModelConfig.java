package dev.moe4j.model.config;

import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.moe.MoeConfig;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * moe4j's own description of a decoder-only mixture-of-experts transformer: everything needed to build the model
 * and to count or load its weights, independent of where it came from. The Hugging Face families map their
 * config.json onto it and back ({@code dev.moe4j.model.family}); models trained by moe4j build one in code with
 * {@link #builder()}.
 *
 * <p>The model: token embedding, then {@link #layers()} decoder layers (pre-norm attention and pre-norm
 * feed-forward, each added to the residual), a final norm and the LM head. A layer's feed-forward is either a
 * dense gated MLP {@code down(act(gate(x)) * up(x))} of width {@link #denseIntermediateSize()} or the mixture of
 * experts of {@link #moe()}, the moe module's {@link MoeConfig}: the one description of an MoE layer in moe4j,
 * every routing, capacity, expert and loss option included.
 *
 * @param family                which Hugging Face model_type this config maps to ("mixtral", "qwen2_moe",
 *                              "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss"), or "moe4j" for one built in code
 * @param denseIntermediateSize width of the dense MLP layers; 0 when every layer is a mixture of experts
 * @param moe                   the MoE layers (all alike); empty for a model without MoE layers
 * @param activation            the activation of the dense MLPs (the experts' network is {@code moe().ffn()})
 * @param tieEmbeddings         the LM head reuses the embedding matrix
 * @param maxPositions          the longest sequence the model was configured for (max_position_embeddings)
 * @param dtype                 the element type the config declares for the weights (dtype or torch_dtype); F32
 *                              when it declares none
 * @param mtpLayers             DeepSeek-V3's multi-token-prediction modules stored beside the model; they are not
 *                              part of the model's forward pass and are not counted in its parameters
 * @param initializerRange      standard deviation of the initial weights when training from scratch
 * @param quantization          the quantisation method the source config declares for its weights ("fp8",
 *                              "mxfp4", ...); informational, not written back by the families
 */
public record ModelConfig(String family, int vocabSize, int hiddenSize, AttentionConfig attention, RopeConfig rope,
                          NormConfig norms, List<LayerSpec> layers, int denseIntermediateSize,
                          Optional<MoeConfig> moe, Activation activation, boolean tieEmbeddings, int maxPositions,
                          SpecialTokens tokens, DType dtype, int mtpLayers, double initializerRange,
                          Optional<String> quantization) {
    /** The family of configs built in code that no Hugging Face family has claimed. */
    public static final String CUSTOM_FAMILY = "moe4j";

    public ModelConfig {
        Objects.requireNonNull(family, "family");
        Objects.requireNonNull(attention, "attention");
        Objects.requireNonNull(rope, "rope");
        Objects.requireNonNull(norms, "norms");
        Objects.requireNonNull(activation, "activation");
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(dtype, "dtype");
        layers = List.copyOf(layers);
        if (vocabSize <= 0 || hiddenSize <= 0) {
            throw new IllegalArgumentException("vocabSize (" + vocabSize + ") and hiddenSize (" + hiddenSize
                    + ") must be positive");
        }
        if (layers.isEmpty()) {
            throw new IllegalArgumentException("a model needs at least one layer");
        }
        boolean anyMoe = layers.stream().anyMatch(LayerSpec::moe);
        boolean anyDense = layers.stream().anyMatch(l -> !l.moe());
        if (anyMoe && moe.isEmpty()) {
            throw new IllegalArgumentException("MoE layers need a MoeConfig");
        }
        if (!anyMoe && moe.isPresent()) {
            throw new IllegalArgumentException("a MoeConfig is given but no layer is a mixture of experts");
        }
        if (moe.isPresent() && moe.get().hidden() != hiddenSize) {
            throw new IllegalArgumentException("the MoE layers' hidden size " + moe.get().hidden()
                    + " differs from the model's " + hiddenSize);
        }
        if (anyDense && denseIntermediateSize <= 0) {
            throw new IllegalArgumentException("dense layers need a positive denseIntermediateSize, got "
                    + denseIntermediateSize);
        }
        if (denseIntermediateSize < 0 || maxPositions <= 0 || mtpLayers < 0) {
            throw new IllegalArgumentException("denseIntermediateSize, maxPositions and mtpLayers must not be"
                    + " negative (maxPositions positive)");
        }
    }

    public int numLayers() {
        return layers.size();
    }

    /** Number of layers whose feed-forward is the mixture of experts. */
    public int numMoeLayers() {
        return (int) layers.stream().filter(LayerSpec::moe).count();
    }

    /** Indices of the layers with a dense MLP. */
    public List<Integer> denseLayerIndices() {
        var out = new ArrayList<Integer>();
        for (int i = 0; i < layers.size(); i++) {
            if (!layers.get(i).moe()) {
                out.add(i);
            }
        }
        return out;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a changed copy. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.family = family;
        b.vocabSize = vocabSize;
        b.hiddenSize = hiddenSize;
        b.attention = attention;
        b.rope = rope;
        b.norms = norms;
        b.layers = new ArrayList<>(layers);
        b.denseIntermediateSize = denseIntermediateSize;
        b.moe = moe.orElse(null);
        b.activation = activation;
        b.tieEmbeddings = tieEmbeddings;
        b.maxPositions = maxPositions;
        b.tokens = tokens;
        b.dtype = dtype;
        b.mtpLayers = mtpLayers;
        b.initializerRange = initializerRange;
        b.quantization = quantization.orElse(null);
        return b;
    }

    /**
     * Builds a config step by step. Defaults: family "moe4j", RoPE theta 10000 without scaling, RMS norm eps 1e-6
     * without q/k norm, SiLU, untied embeddings, 4096 positions, no special tokens, F32, initializer range 0.02.
     * Vocabulary, hidden size, attention and layers must be set.
     */
    public static final class Builder {
        private String family = CUSTOM_FAMILY;
        private int vocabSize;
        private int hiddenSize;
        private AttentionConfig attention;
        private RopeConfig rope = RopeConfig.of(10_000.0);
        private NormConfig norms = new NormConfig(1e-6, QkNorm.NONE);
        private List<LayerSpec> layers = new ArrayList<>();
        private int denseIntermediateSize;
        private MoeConfig moe;
        private Activation activation = Activation.SILU;
        private boolean tieEmbeddings;
        private int maxPositions = 4096;
        private SpecialTokens tokens = SpecialTokens.none();
        private DType dtype = DType.F32;
        private int mtpLayers;
        private double initializerRange = 0.02;
        private String quantization;

        private Builder() {
        }

        public Builder family(String family) {
            this.family = family;
            return this;
        }

        public Builder vocabSize(int vocabSize) {
            this.vocabSize = vocabSize;
            return this;
        }

        public Builder hiddenSize(int hiddenSize) {
            this.hiddenSize = hiddenSize;
            return this;
        }

        public Builder attention(AttentionConfig attention) {
            this.attention = attention;
            return this;
        }

        public Builder rope(RopeConfig rope) {
            this.rope = rope;
            return this;
        }

        public Builder norms(NormConfig norms) {
            this.norms = norms;
            return this;
        }

        public Builder layers(List<LayerSpec> layers) {
            this.layers = new ArrayList<>(layers);
            return this;
        }

        /** {@code count} MoE layers with full attention. */
        public Builder moeLayers(int count) {
            this.layers = new ArrayList<>(Collections.nCopies(count, LayerSpec.moeLayer()));
            return this;
        }

        /** Makes the given layers dense MLP layers of the given width. */
        public Builder denseLayers(int intermediateSize, int... indices) {
            this.denseIntermediateSize = intermediateSize;
            for (int i : indices) {
                layers.set(i, new LayerSpec(false, layers.get(i).slidingWindow()));
            }
            return this;
        }

        public Builder denseIntermediateSize(int size) {
            this.denseIntermediateSize = size;
            return this;
        }

        public Builder moe(MoeConfig moe) {
            this.moe = moe;
            return this;
        }

        public Builder activation(Activation activation) {
            this.activation = activation;
            return this;
        }

        public Builder tieEmbeddings(boolean tie) {
            this.tieEmbeddings = tie;
            return this;
        }

        public Builder maxPositions(int maxPositions) {
            this.maxPositions = maxPositions;
            return this;
        }

        public Builder tokens(SpecialTokens tokens) {
            this.tokens = tokens;
            return this;
        }

        public Builder dtype(DType dtype) {
            this.dtype = dtype;
            return this;
        }

        public Builder mtpLayers(int mtpLayers) {
            this.mtpLayers = mtpLayers;
            return this;
        }

        public Builder initializerRange(double initializerRange) {
            this.initializerRange = initializerRange;
            return this;
        }

        public Builder quantization(String quantization) {
            this.quantization = quantization;
            return this;
        }

        public ModelConfig build() {
            return new ModelConfig(family, vocabSize, hiddenSize, attention, rope, norms, layers,
                    denseIntermediateSize, Optional.ofNullable(moe), activation, tieEmbeddings, maxPositions, tokens,
                    dtype, mtpLayers, initializerRange, Optional.ofNullable(quantization));
        }
    }
}
