package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The tiny models transformers saved (shared/fixtures/hf/models, carried by the model module's test resources and
 * reached here through its test-jar), laid out as a user's model folder: config.json, the weights, and the
 * tokenizer.json of the case (cli's own copies of the two fixture tokenizers).
 */
final class Fixtures {
    static final List<String> ALL = List.of("mixtral", "mixtral-bf16-sharded", "qwen2-moe", "qwen3-moe", "olmoe",
            "deepseek-v3", "gpt-oss");
    private static final List<String> SHARDS = List.of("model-00001-of-00004.safetensors",
            "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
            "model.safetensors.index.json");

    private Fixtures() {
    }

    /** A model folder for fixture {@code name} under {@code into}. */
    static Path model(String name, Path into) {
        Path folder = into.resolve(name);
        List<String> weights = name.endsWith("-sharded") ? SHARDS : List.of("model.safetensors");
        try {
            Files.createDirectories(folder);
            copy("fixtures/" + name + "/config.json", folder.resolve("config.json"));
            for (String w : weights) {
                copy("fixtures/" + name + "/" + w, folder.resolve(w));
            }
            Path tokenizer = Cli.resource(name.startsWith("mixtral") ? "models/mixtral/tokenizer.json"
                    : "tokenizers/bytelevel.json");
            Files.copy(tokenizer, folder.resolve("tokenizer.json"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return folder;
    }

    static JsonNode reference(String name) {
        try (InputStream in = stream("fixtures/" + name + "/reference.json")) {
            return Json.parse(in.readAllBytes(), name + "/reference.json");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One tensor of the fixture's reference.safetensors, copied to the heap. */
    static Tensor referenceTensor(String name, String tensor, Path scratch) {
        Path file = scratch.resolve(name + "-reference.safetensors");
        try {
            if (!Files.exists(file)) {
                copy("fixtures/" + name + "/reference.safetensors", file);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try (var reader = SafetensorsReader.open(file)) {
            return reader.tensor(tensor).copy();
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static String idList(int[] ids) {
        return String.join(",", java.util.Arrays.stream(ids).mapToObj(Integer::toString).toList());
    }

    private static void copy(String resource, Path target) throws IOException {
        try (InputStream in = stream(resource)) {
            Files.copy(in, target);
        }
    }

    private static InputStream stream(String resource) {
        InputStream in = Fixtures.class.getClassLoader().getResourceAsStream(resource);
        if (in == null) {
            throw new IllegalStateException("missing test resource " + resource + " (the model module's test-jar)");
        }
        return in;
    }
}
