package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Scoring;

import java.util.Arrays;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The llama.cpp architecture a Hugging Face family becomes in GGUF, and the check that llama.cpp computes the same
 * function: a config with something the architecture's graph does not have (a bias, a sliding window, dense layers,
 * weights that are not renormalised, ...) is refused rather than converted into a file that runs differently.
 */
enum GgufArchitecture {
    /**
     * Mixtral: llama.cpp's {@code llama} with experts. Its graph rotates adjacent pairs of each head's dimensions
     * (GPT-J style) while transformers rotates the two halves, so the query and key rows are reordered on the way
     * ({@link #interleavedRope}): half-layout dimension {@code j} goes to {@code 2j}, {@code j + d/2} to
     * {@code 2j + 1}. The scores q·k are unchanged because queries and keys move alike.
     */
    LLAMA("llama", "mixtral", true, QkNorm.NONE, true, false),
    /**
     * Qwen2-MoE: llama.cpp's {@code qwen2moe}: q, k and v biases, top-k weights as the softmax gave them, a shared
     * expert behind a sigmoid gate ({@code ffn_*_shexp}, {@code ffn_gate_inp_shexp}).
     */
    QWEN2MOE("qwen2moe", "qwen2_moe", false, QkNorm.NONE, false, true),
    /** Qwen3-MoE: llama.cpp's {@code qwen3moe}, half-layout RoPE as in transformers, q/k RMSNorm per head. */
    QWEN3MOE("qwen3moe", "qwen3_moe", false, QkNorm.PER_HEAD, true, false),
    /**
     * OLMoE: llama.cpp's {@code olmoe}: q/k RMSNorm over the whole projections (both of the model's width, so
     * llama.cpp has no grouped-query attention here), top-k weights not renormalised.
     */
    OLMOE("olmoe", "olmoe", false, QkNorm.WHOLE_PROJECTION, false, false),
    /**
     * gpt-oss: llama.cpp's {@code gpt-oss}: biases on q, k, v, o, the router and the experts, a sink logit per head
     * ({@code attn_sinks}), the clamped SwiGLU with gate and up as separate stacked tensors (transformers interleaves
     * them in one), top-k logits then softmax, the pre-FFN norm named {@code post_attention_norm}, and sliding-window
     * attention on the even layers. llama.cpp rounds YaRN's correction range to whole dimensions, which gpt-oss's
     * config.json asks transformers not to do ({@link GgufConverter.Result#notes()} says so).
     */
    GPT_OSS("gpt-oss", "gpt_oss"),
    /**
     * DeepSeek-V3: llama.cpp's {@code deepseek2} with sigmoid gating: multi-head latent attention (q and kv low-rank
     * projections, RoPE on adjacent pairs of the rotary part), leading dense layers, the selection-only bias
     * ({@code exp_probs_b}), group-limited top-k, routed scaling and one ungated shared expert ({@code ffn_*_shexp}).
     */
    DEEPSEEK2("deepseek2", "deepseek_v3");

    private final String ggufName;
    private final String family;
    private final boolean interleavedRope;
    private final QkNorm qkNorm;
    private final boolean normalizesTopK;
    private final boolean sharedExpert;

    /** An architecture with a check of its own, which the flags of the Llama-style ones do not describe. */
    GgufArchitecture(String ggufName, String family) {
        this(ggufName, family, false, QkNorm.NONE, false, false);
    }

    GgufArchitecture(String ggufName, String family, boolean interleavedRope, QkNorm qkNorm, boolean normalizesTopK,
                     boolean sharedExpert) {
        this.ggufName = ggufName;
        this.family = family;
        this.interleavedRope = interleavedRope;
        this.qkNorm = qkNorm;
        this.normalizesTopK = normalizesTopK;
        this.sharedExpert = sharedExpert;
    }

    /** {@code general.architecture}, also the prefix of the architecture's keys. */
    String ggufName() {
        return ggufName;
    }

    /** The Hugging Face model_type whose semantics the architecture has. */
    String family() {
        return family;
    }

    /** The architecture of {@code general.architecture}, if moe4j runs it. */
    static Optional<GgufArchitecture> named(String ggufName) {
        return Arrays.stream(values()).filter(a -> a.ggufName.equals(ggufName)).findFirst();
    }

    /** llama.cpp's names of the architectures moe4j runs, for messages. */
    static String names() {
        return Arrays.stream(values()).map(a -> a.ggufName).collect(Collectors.joining(", "));
    }

    /** Whether llama.cpp rotates adjacent pairs, so that the query and key rows must be reordered. */
    boolean interleavedRope() {
        return interleavedRope;
    }

    /**
     * The architecture of a config's family, once the config is checked to be one llama.cpp computes exactly.
     *
     * @param configFile where the config came from (its file, or the flags that made it), for messages
     */
    static GgufArchitecture of(ModelConfig config, String configFile) {
        GgufArchitecture arch = Arrays.stream(values()).filter(a -> a.family.equals(config.family())).findFirst()
                .orElseThrow(() -> new BadInputException(configFile + ": model_type '" + config.family()
                        + "' cannot be converted to GGUF yet; moe4j converts "
                        + Arrays.stream(values()).map(a -> a.family).collect(Collectors.joining(", "))));
        arch.check(config, configFile);
        return arch;
    }

    private void check(ModelConfig config, String configFile) {
        switch (this) {
            case GPT_OSS -> checkGptOss(config, configFile);
            case DEEPSEEK2 -> checkDeepseek2(config, configFile);
            default -> checkLlamaStyle(config, configFile);
        }
    }

    private void checkLlamaStyle(ModelConfig config, String configFile) {
        if (!(config.attention() instanceof AttentionConfig.Standard a)) {
            throw refuse(configFile, "latent attention");
        }
        require(a.qkvBias() == (this == QWEN2MOE) && !a.outputBias(), configFile,
                this == QWEN2MOE ? "no q/k/v biases or an output bias" : "attention biases");
        require(this != OLMOE || a.numKvHeads() == a.numHeads(), configFile, "grouped-query attention");
        require(a.clipQkv().isEmpty() && !a.sinks(), configFile, "clipped attention or attention sinks");
        require(config.norms().qkNorm() == qkNorm, configFile, "q/k norms " + config.norms().qkNorm());
        require(config.layers().stream().allMatch(l -> l.slidingWindow() == 0), configFile, "a sliding window");
        require(config.numMoeLayers() == config.numLayers(), configFile, "dense (non-MoE) layers");
        RopeConfig rope = config.rope();
        require(rope.layout() == RopeConfig.Layout.HALF && rope.partialRotaryFactor() == 1.0, configFile,
                "partial or interleaved RoPE");
        require(rope.scaling() instanceof RopeConfig.None || rope.scaling() instanceof RopeConfig.Linear,
                configFile, "RoPE scaling '" + rope.scaling().type() + "'");
        require(config.activation() == Activation.SILU, configFile, "activation " + config.activation());
        MoeConfig moe = config.moe().orElseThrow();
        require(moe.normalizeTopK() == normalizesTopK, configFile, "top-k weights that are "
                + (normalizesTopK ? "not " : "") + "renormalised (norm_topk_prob " + moe.normalizeTopK() + ")");
        require((moe.sharedIntermediate() > 0) == sharedExpert && moe.sharedGate() == sharedExpert, configFile,
                sharedExpert ? "no gated shared expert" : "shared experts");
        require(!moe.expertBias() && !moe.routerBias() && !moe.selectionBias() && moe.routedScalingFactor() == 1.0,
                configFile, "router or expert biases or routed scaling");
    }

    /**
     * llama.cpp's gpt-oss requires every bias and sink and output.weight, slides the window on the even layers only,
     * and has the clamped SwiGLU's constants built in.
     */
    private void checkGptOss(ModelConfig config, String configFile) {
        if (!(config.attention() instanceof AttentionConfig.Standard a)) {
            throw refuse(configFile, "latent attention");
        }
        require(a.qkvBias() && a.outputBias() && a.sinks(), configFile,
                "attention without biases on q, k, v and o or without sinks");
        require(a.clipQkv().isEmpty() && config.norms().qkNorm() == QkNorm.NONE, configFile,
                "clipped attention or q/k norms");
        require(!config.tieEmbeddings(), configFile, "an LM head tied to the embedding (output.weight is required)");
        require(config.numMoeLayers() == config.numLayers(), configFile, "dense (non-MoE) layers");
        int window = config.layers().getFirst().slidingWindow();
        for (int i = 0; i < config.numLayers(); i++) {
            require(config.layers().get(i).slidingWindow() == (i % 2 == 0 ? window : 0) && window > 0, configFile,
                    "layers other than a sliding window on the even ones and full attention on the odd ones");
        }
        RopeConfig rope = config.rope();
        require(rope.layout() == RopeConfig.Layout.HALF && rope.partialRotaryFactor() == 1.0, configFile,
                "partial or interleaved RoPE");
        switch (rope.scaling()) {
            case RopeConfig.None none -> {
            }
            case RopeConfig.Yarn y -> require(y.mscale().isEmpty() && y.mscaleAllDim().isEmpty()
                    && y.attentionFactor().isEmpty(), configFile, "YaRN with mscale, mscale_all_dim or attention_factor");
            default -> throw refuse(configFile, "RoPE scaling '" + rope.scaling().type() + "'");
        }
        MoeConfig moe = config.moe().orElseThrow();
        require(moe.scoring() == Scoring.SOFTMAX && moe.gateOrder() == GateOrder.TOP_K_THEN_SOFTMAX
                && moe.routerBias() && moe.expertBias() && !moe.selectionBias() && !moe.groupLimit().isLimited()
                && moe.routedScalingFactor() == 1.0, configFile,
                "a router other than top-k logits then softmax, with router and expert biases");
        require(moe.sharedIntermediate() == 0, configFile, "shared experts");
        // llama.cpp's clamped SwiGLU has alpha 1.702 and limit 7 built in
        require(moe.ffn() instanceof ExpertFfn.Gated(GluParams.Clamped glu) && glu.alpha() == 1.702f
                && glu.limit() == 7.0f, configFile, "experts computing " + moe.ffn()
                + " rather than the clamped SwiGLU of alpha 1.702 and limit 7");
    }

    private void checkDeepseek2(ModelConfig config, String configFile) {
        if (!(config.attention() instanceof AttentionConfig.Latent a)) {
            throw refuse(configFile, "standard (non-latent) attention");
        }
        require(!a.bias(), configFile, "biases on the attention projections");
        // transformers builds the q_a and kv_a norms with 1e-6 whatever rms_norm_eps says; llama.cpp uses
        // rms_norm_eps for every norm, so the two agree only there
        require(config.norms().eps() == 1e-6, configFile, "rms_norm_eps " + config.norms().eps()
                + " (llama.cpp would use it for the latent norms too, which transformers builds with 1e-6)");
        require(config.norms().qkNorm() == QkNorm.NONE, configFile, "q/k norms");
        require(config.layers().stream().noneMatch(LayerSpec::isSliding), configFile, "a sliding window");
        int dense = config.denseLayerIndices().size();
        for (int i = 0; i < config.numLayers(); i++) {
            require(config.layers().get(i).moe() == (i >= dense), configFile, "dense layers other than the first ones");
        }
        require(config.activation() == Activation.SILU, configFile, "activation " + config.activation());
        RopeConfig rope = config.rope();
        require(rope.layout() == RopeConfig.Layout.INTERLEAVED && rope.partialRotaryFactor() == 1.0, configFile,
                "RoPE on the two halves of the rotary part (rope_interleave false)");
        switch (rope.scaling()) {
            case RopeConfig.None none -> {
            }
            // llama.cpp takes mscale equal to mscale_all_dim (rope.scaling.yarn_log_multiplier) and has no
            // attention_factor; without mscale_all_dim it scales queries and keys as transformers does not
            case RopeConfig.Yarn y -> require(y.mscaleAllDim().orElse(0) > 0
                    && y.mscale().equals(y.mscaleAllDim()) && y.attentionFactor().isEmpty(), configFile,
                    "YaRN other than with mscale equal to mscale_all_dim and no attention_factor");
            default -> throw refuse(configFile, "RoPE scaling '" + rope.scaling().type() + "'");
        }
        MoeConfig moe = config.moe().orElseThrow(() -> refuse(configFile, "no MoE layers"));
        require(moe.scoring() == Scoring.SIGMOID && moe.gateOrder() == GateOrder.SOFTMAX_THEN_TOP_K
                && moe.selectionBias() && !moe.routerBias() && !moe.expertBias(), configFile,
                "a router other than sigmoid scores with a selection bias");
        GroupLimit groups = moe.groupLimit();
        require(!groups.isLimited() || groups.scoredPerGroup() == 2, configFile,
                "groups scored by other than their two best experts");
        require(moe.sharedIntermediate() > 0 && moe.sharedIntermediate() % moe.intermediate() == 0
                && !moe.sharedGate(), configFile, "other than whole ungated shared experts");
        require(moe.ffn() instanceof ExpertFfn.Gated(GluParams.Gated glu) && glu.activation() == Activation.SILU,
                configFile, "experts computing " + moe.ffn());
    }

    private void require(boolean ok, String configFile, String what) {
        if (!ok) {
            throw refuse(configFile, what);
        }
    }

    private BadInputException refuse(String configFile, String what) {
        return new BadInputException(configFile + ": the model has " + what + ", which llama.cpp's '" + ggufName
                + "' architecture does not; a GGUF of it would compute another function");
    }
}
