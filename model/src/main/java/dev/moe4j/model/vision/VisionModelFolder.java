package dev.moe4j.model.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.io.safetensors.SafetensorsWriter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A vision model saved as the language models are: a folder with {@code config.json} ({@code model_type:
 * moe4j_vit}, the MoE layers spelled as moe4j's own family spells them) and {@code model.safetensors} (F32, by the
 * names of {@link VisionTransformer#parameters()} and its buffers), written atomically; as in a Hugging Face image
 * classifier, config.json maps class ids to names ({@code id2label}) and {@code preprocessor_config.json} holds the
 * pixel normalisation ({@code rescale_factor} 1/255, then {@code image_mean} and {@code image_std}). Loading checks
 * every tensor's presence and shape before any is used, and refuses leftovers.
 */
public final class VisionModelFolder {
    public static final String PREPROCESSOR = "preprocessor_config.json";

    private VisionModelFolder() {
    }

    /**
     * How a model reads pixels: each value v of 0-255 becomes (v / 255 − mean) / std, and which class each output is.
     */
    public record Preprocessing(List<String> classes, float mean, float std) {
        public Preprocessing {
            classes = List.copyOf(classes);
        }

        public float normalise(int pixel) {
            return (pixel / 255f - mean) / std;
        }
    }

    /** A loaded model and how it reads images. */
    public record Loaded(VisionTransformer model, Preprocessing preprocessing) {
    }

    /** Writes {@code model} and how it reads images into {@code folder}, replacing what is there. */
    public static void save(VisionTransformer model, Preprocessing pre, Path folder) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> tensors.put(name, p.value()));
        tensors.putAll(model.buffers());
        AtomicDirectory.replace(folder, dir -> {
            ObjectNode config = model.config().toJson();
            ObjectNode names = config.putObject("id2label");
            for (int i = 0; i < pre.classes().size(); i++) {
                names.put(Integer.toString(i), pre.classes().get(i));
            }
            Files.writeString(dir.resolve("config.json"), Json.pretty(config));
            ObjectNode p = Json.mapper().createObjectNode();
            p.put("do_rescale", true).put("rescale_factor", 1 / 255.0).put("do_normalize", true);
            p.putArray("image_mean").add(pre.mean());
            p.putArray("image_std").add(pre.std());
            Files.writeString(dir.resolve(PREPROCESSOR), Json.pretty(p));
            SafetensorsWriter.write(dir.resolve(Checkpoint.SINGLE_FILE), tensors);
        });
    }

    /** Reads a folder written by {@link #save}. */
    public static Loaded load(Path folder) {
        Path configFile = folder.resolve("config.json");
        if (!Files.isRegularFile(configFile)) {
            throw new BadInputException(folder + ": not a model folder (no config.json)");
        }
        if (!(Json.read(configFile) instanceof ObjectNode json)) {
            throw new BadInputException(configFile + ": expected a JSON object");
        }
        VisionConfig config = VisionConfig.fromJson(json, configFile.toString());
        var model = new VisionTransformer(config);
        Map<String, Tensor> targets = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> targets.put(name, p.value()));
        targets.putAll(model.buffers());
        Path weights = folder.resolve(Checkpoint.SINGLE_FILE);
        if (!Files.isRegularFile(weights)) {
            throw new BadInputException(folder + ": no " + Checkpoint.SINGLE_FILE);
        }
        try (Checkpoint checkpoint = Checkpoint.open(weights)) {
            Set<String> left = new HashSet<>(checkpoint.names());
            for (var e : targets.entrySet()) {
                String name = e.getKey();
                if (!checkpoint.contains(name)) {
                    throw new BadInputException(weights + ": tensor '" + name + "' is missing");
                }
                Tensor stored = checkpoint.tensor(name);
                if (!Arrays.equals(stored.shape(), e.getValue().shape())) {
                    throw new BadInputException(weights + ": tensor '" + name + "': expected shape "
                            + Arrays.toString(e.getValue().shape()) + " for this config, got "
                            + Arrays.toString(stored.shape()));
                }
                e.getValue().copyFrom(stored);
                left.remove(name);
            }
            if (!left.isEmpty()) {
                throw new BadInputException(weights + ": tensors this config does not have: "
                        + BadInputException.quote(String.join(", ", left.stream().sorted().toList())));
            }
        }
        return new Loaded(model, new Preprocessing(labels(json, configFile, config.classes()),
                normalisation(folder.resolve(PREPROCESSOR), "image_mean", 0f),
                normalisation(folder.resolve(PREPROCESSOR), "image_std", 1f)));
    }

    /** The names of id2label, or the ids themselves where it has none. */
    private static List<String> labels(ObjectNode config, Path file, int classes) {
        JsonNode names = config.path("id2label");
        var out = new java.util.ArrayList<String>();
        for (int i = 0; i < classes; i++) {
            JsonNode name = names.path(Integer.toString(i));
            if (!names.isMissingNode() && !name.isTextual()) {
                throw new BadInputException(file + ": id2label: expected a name for each of the " + classes
                        + " classes, missing '" + i + "'");
            }
            out.add(name.isTextual() ? name.asText() : Integer.toString(i));
        }
        return out;
    }

    /** A one-channel normalisation value of the preprocessor file ({@code fallback} when the file is absent). */
    private static float normalisation(Path file, String field, float fallback) {
        if (!Files.isRegularFile(file)) {
            return fallback;
        }
        JsonNode v = Json.read(file).path(field);
        if (!v.isArray() || v.size() != 1 || !v.get(0).isNumber()
                || (field.equals("image_std") && !(v.get(0).asDouble() > 0))) {
            throw new BadInputException(file + ": " + field + ": expected one number (one channel)"
                    + (field.equals("image_std") ? ", above 0" : ""));
        }
        return (float) v.get(0).asDouble();
    }
}
