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
 * names of {@link VisionTransformer#parameters()} and its buffers), written atomically; {@code labels.json} names the
 * classes. Loading checks every tensor's presence and shape before any is used, and refuses leftovers.
 */
public final class VisionModelFolder {
    public static final String LABELS = "labels.json";

    private VisionModelFolder() {
    }

    /** A loaded model and its class names. */
    public record Loaded(VisionTransformer model, List<String> labels) {
    }

    /** Writes {@code model} and its class names into {@code folder}, replacing what is there. */
    public static void save(VisionTransformer model, List<String> labels, Path folder) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        model.parameters().forEach((name, p) -> tensors.put(name, p.value()));
        tensors.putAll(model.buffers());
        AtomicDirectory.replace(folder, dir -> {
            Files.writeString(dir.resolve("config.json"), Json.pretty(model.config().toJson()));
            var names = Json.mapper().createArrayNode();
            labels.forEach(names::add);
            Files.writeString(dir.resolve(LABELS), Json.pretty(names));
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
        return new Loaded(model, labels(folder.resolve(LABELS), config.classes()));
    }

    private static List<String> labels(Path file, int classes) {
        if (!Files.isRegularFile(file)) {
            return java.util.stream.IntStream.range(0, classes).mapToObj(Integer::toString).toList();
        }
        JsonNode node = Json.read(file);
        if (!node.isArray() || node.size() != classes) {
            throw new BadInputException(file + ": expected a list of " + classes + " class names");
        }
        var out = new java.util.ArrayList<String>();
        node.forEach(n -> out.add(n.asText()));
        return out;
    }
}
