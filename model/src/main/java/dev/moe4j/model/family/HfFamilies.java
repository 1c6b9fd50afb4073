package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;

/** The supported Hugging Face families, and loading and saving config.json through them. */
public final class HfFamilies {
    /**
     * Every supported family, in the order they are listed to users; the last, moe4j's own format, holds what the
     * Hugging Face families cannot express.
     */
    public static final List<HfFamily> ALL = List.of(new MixtralFamily(), new Qwen2MoeFamily(),
            new Qwen3MoeFamily(), new OlmoeFamily(), new DeepseekV3Family(), new GptOssFamily(), new Moe4jFamily());

    private HfFamilies() {
    }

    public static Optional<HfFamily> find(String modelType) {
        return ALL.stream().filter(f -> f.modelType().equals(modelType)).findFirst();
    }

    /** The supported model_type names, comma-separated, for messages and help. */
    public static String supported() {
        return ALL.stream().map(HfFamily::modelType).collect(Collectors.joining(", "));
    }

    /** Reads a config.json and maps it onto a ModelConfig through its model_type's family. */
    public static ModelConfig load(Path configJson) {
        return read(Json.read(configJson), configJson.toString());
    }

    /** Maps parsed config.json content; {@code source} names it in error messages. */
    public static ModelConfig read(JsonNode json, String source) {
        if (!(json instanceof ObjectNode object)) {
            throw new BadInputException(source + ": expected a JSON object of config fields");
        }
        var fields = new ConfigFields(object, source);
        if (!fields.hasValue("model_type")) {
            throw new BadInputException(source + ": missing required field 'model_type'; supported: " + supported());
        }
        String modelType = fields.stringOr("model_type", "");
        HfFamily family = find(modelType).orElseThrow(() -> new BadInputException(source
                + ": unsupported model_type '" + modelType + "'; supported: " + supported()));
        try {
            return family.read(fields);
        } catch (IllegalArgumentException e) {
            // The records check how fields fit together (top-k within the experts, groups dividing them, ...).
            throw new BadInputException(source + ": inconsistent config: " + e.getMessage(), e);
        }
    }

    /** The config.json of {@code config} in the given family's format. */
    public static ObjectNode toJson(ModelConfig config, String modelType) {
        HfFamily family = find(modelType).orElseThrow(() -> new BadInputException("cannot save as '" + modelType
                + "': not a supported model_type; supported: " + supported()));
        return family.write(config);
    }

    /** The config.json of {@code config} in the format of its own family. */
    public static ObjectNode toJson(ModelConfig config) {
        return toJson(config, config.family());
    }

    /** Writes {@code config} as a config.json of its family, atomically (a temporary file, then a move). */
    public static void save(ModelConfig config, Path file) {
        AtomicFiles.writeString(file, Json.pretty(toJson(config)) + "\n");
    }
}
