package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.MoeConfig;

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
    OLMOE("olmoe", "olmoe", false, QkNorm.WHOLE_PROJECTION, false, false);

    private final String ggufName;
    private final String family;
    private final boolean interleavedRope;
    private final QkNorm qkNorm;
    private final boolean normalizesTopK;
    private final boolean sharedExpert;

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
                        + Arrays.stream(values()).map(a -> a.family).collect(Collectors.joining(" and "))));
        arch.check(config, configFile);
        return arch;
    }

    private void check(ModelConfig config, String configFile) {
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
