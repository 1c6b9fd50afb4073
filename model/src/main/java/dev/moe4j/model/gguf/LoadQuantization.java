package dev.moe4j.model.gguf;

import dev.moe4j.core.DType;
import dev.moe4j.model.config.ModelConfig;

import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code --quantize TYPE}: a safetensors model's matrices quantised as they are loaded, each to the type that
 * {@code moe4j convert --to gguf --type TYPE} would write it in ({@link GgufFileType#typeOf}, llama.cpp's rules),
 * so that a model held quantised in memory computes what the converted file computes. Norms, routers and vectors
 * keep their stored type, as does a matrix the rules would store unquantised (F16 where no block fits its rows).
 */
public record LoadQuantization(GgufFileType fileType, GgufFileType.Model model, String family) {
    private static final Pattern EXPERT = Pattern.compile("(.+)\\[(\\d+)]");

    /** The rules of {@code fileType} (a quantised one) for a model of {@code config}. */
    public static LoadQuantization of(GgufFileType fileType, ModelConfig config) {
        if (!fileType.isQuantized()) {
            throw new IllegalArgumentException(fileType + " is not a quantised file type");
        }
        int experts = config.moe().map(m -> m.experts()).orElse(0);
        return new LoadQuantization(fileType, new GgufFileType.Model(config.numLayers(), experts,
                config.tieEmbeddings()), config.family());
    }

    /**
     * The block type moe4j's weight {@code name} of {@code shape} is held in, or empty to keep its stored type. An
     * expert's matrix is typed as llama.cpp types the stacked tensor it would be part of.
     */
    public Optional<DType> typeOf(String name, int[] shape) {
        String gguf;
        int[] typedShape = shape;
        try {
            gguf = GgufWeights.namesFor(family).toCheckpoint(name);
        } catch (IllegalArgumentException e) {
            // a weight llama.cpp has no name for here: the default rule, under moe4j's name
            gguf = name;
        }
        Matcher m = EXPERT.matcher(gguf);
        if (m.matches()) {
            gguf = m.group(1);
            typedShape = new int[shape.length + 1];
            typedShape[0] = model.experts();
            System.arraycopy(shape, 0, typedShape, 1, shape.length);
        }
        DType type = fileType.typeOf(gguf, typedShape, model).dtype();
        return type.isBlockQuantized() ? Optional.of(type) : Optional.empty();
    }
}
