package dev.moe4j.model.vision;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.family.ConfigFields;
import dev.moe4j.model.family.Moe4jFamily;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.ExpertChoiceDecode;

import java.util.Optional;

/**
 * A vision transformer (ViT, Dosovitskiy et al. 2021) with mixture-of-experts MLPs placed as V-MoE places them
 * (Riquelme et al. 2021, "Every-2": every other layer, the odd ones counted from 0), over square single-channel or
 * colour images cut into square patches. Each MoE layer follows {@link #moe()}, so every router of moe4j (top-k
 * with capacity and batch priority routing, expert choice, Soft MoE, dense) can take the place of V-MoE's.
 *
 * @param imageSize  side of the square input in pixels
 * @param channels   colour channels (1 for Fashion-MNIST)
 * @param patchSize  side of a square patch; it must divide {@code imageSize}
 * @param hidden     the width D of the residual stream
 * @param layers     encoder layers
 * @param heads      attention heads (D must divide among them)
 * @param mlpWidth   width of the dense layers' GELU MLP
 * @param classes    output classes
 * @param moeEvery   every n-th layer (n − 1, 2n − 1, ...) is a mixture of experts; 0 for a dense ViT
 * @param moe        the MoE layers; empty for a dense ViT
 * @param normEps    ε of the RMS norms
 * @param initStd    standard deviation of the initial weights (as the language models' initializer_range)
 * @param seed       seeds the initial weights
 */
public record VisionConfig(int imageSize, int channels, int patchSize, int hidden, int layers, int heads, int mlpWidth,
                           int classes, int moeEvery, Optional<MoeConfig> moe, double normEps, double initStd,
                           long seed) {
    /** The config.json's {@code model_type}. */
    public static final String MODEL_TYPE = "moe4j_vit";

    public VisionConfig {
        require(imageSize > 0 && channels > 0 && patchSize > 0 && imageSize % patchSize == 0, "patch_size",
                "must divide image_size " + imageSize + ", got " + patchSize);
        require(hidden > 0 && heads > 0 && hidden % heads == 0, "num_attention_heads",
                "must divide hidden_size " + hidden + ", got " + heads);
        require(layers > 0 && mlpWidth > 0 && classes > 1, "num_hidden_layers",
                "layers, mlp width and classes (> 1) must be positive");
        require(moeEvery >= 0, "moe_every", "must be 0 (dense) or more, got " + moeEvery);
        require((moeEvery > 0 && moeEvery <= layers) == moe.isPresent(), "moe",
                "is needed exactly when some layer is a mixture of experts (moe_every " + moeEvery + " of " + layers
                        + " layers)");
        moe.ifPresent(m -> require(m.hidden() == hidden, "moe", "hidden size " + m.hidden() + " differs from "
                + hidden));
        // The language models' causal threshold decoding exists because a token cannot wait for later ones; an
        // encoder has the whole image at once, so expert choice picks each expert's top patches of the batch.
        moe.ifPresent(m -> require(m.router() != RouterKind.EXPERT_CHOICE
                        || m.expertChoiceDecode() == ExpertChoiceDecode.BATCH_TOP_C, "moe.expert_choice_decode",
                "an encoder routes expert choice over the batch at inference: expected batch_top_c"));
        require(normEps > 0 && initStd > 0, "rms_norm_eps", "ε and the initial standard deviation must be positive");
    }

    private static void require(boolean ok, String field, String problem) {
        if (!ok) {
            throw new BadInputException("vision config: " + field + ": " + problem);
        }
    }

    /** Patches per image side. */
    public int grid() {
        return imageSize / patchSize;
    }

    /** Patches per image: the sequence length of the encoder. */
    public int patches() {
        return grid() * grid();
    }

    /** Values per patch (pixels × channels). */
    public int patchValues() {
        return patchSize * patchSize * channels;
    }

    /** Whether layer {@code i} (from 0) is a mixture of experts. */
    public boolean isMoe(int i) {
        return moeEvery > 0 && (i + 1) % moeEvery == 0;
    }

    /** This config with another MoE layer (a router, capacity or priority to train with) or none. */
    public VisionConfig withMoe(int every, Optional<MoeConfig> layer) {
        return new VisionConfig(imageSize, channels, patchSize, hidden, layers, heads, mlpWidth, classes, every,
                layer, normEps, initStd, seed);
    }

    public VisionConfig withSeed(long newSeed) {
        return new VisionConfig(imageSize, channels, patchSize, hidden, layers, heads, mlpWidth, classes, moeEvery,
                moe, normEps, initStd, newSeed);
    }

    /** The config.json of a saved model. */
    public ObjectNode toJson() {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("model_type", MODEL_TYPE);
        o.put("image_size", imageSize);
        o.put("num_channels", channels);
        o.put("patch_size", patchSize);
        o.put("hidden_size", hidden);
        o.put("num_hidden_layers", layers);
        o.put("num_attention_heads", heads);
        o.put("intermediate_size", mlpWidth);
        o.put("num_labels", classes);
        o.put("moe_every", moeEvery);
        o.put("rms_norm_eps", normEps);
        o.put("initializer_range", initStd);
        o.put("seed", seed);
        moe.ifPresent(m -> Moe4jFamily.writeMoe(m, o.putObject("moe")));
        return o;
    }

    /** Reads a config.json written by {@link #toJson}; {@code source} names the file in errors. */
    public static VisionConfig fromJson(ObjectNode json, String source) {
        var c = new ConfigFields(json, source);
        String type = c.stringOr("model_type", "");
        if (!type.equals(MODEL_TYPE)) {
            throw c.error("model_type", "expected '" + MODEL_TYPE + "' (a moe4j vision model), got '" + type + "'");
        }
        int hidden = c.requiredPositiveInt("hidden_size");
        int every = c.nonNegativeIntOr("moe_every", 0);
        Optional<MoeConfig> moe = c.object("moe").map(m -> Moe4jFamily.readMoe(c, m, hidden));
        try {
            return new VisionConfig(c.requiredPositiveInt("image_size"), c.positiveIntOr("num_channels", 1),
                    c.requiredPositiveInt("patch_size"), hidden, c.requiredPositiveInt("num_hidden_layers"),
                    c.requiredPositiveInt("num_attention_heads"), c.requiredPositiveInt("intermediate_size"),
                    c.requiredPositiveInt("num_labels"), every, moe, c.positiveDoubleOr("rms_norm_eps", 1e-6),
                    c.positiveDoubleOr("initializer_range", 0.02), (long) c.doubleOr("seed", 1));
        } catch (BadInputException e) {
            throw new BadInputException(source + ": " + e.getMessage(), e);
        }
    }
}
