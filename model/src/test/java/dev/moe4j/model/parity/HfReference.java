package dev.moe4j.model.parity;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * What transformers computed for one fixture model (reference.safetensors and reference.json, copied from the
 * shared fixtures): its inputs, logits, hidden states, router logits, losses and greedy continuation.
 */
final class HfReference {
    final String name;
    final Path folder;
    private final Map<String, Tensor> tensors = new HashMap<>();
    private final JsonNode json;

    HfReference(String name) {
        this.name = name;
        this.folder = Resources.fixture(name);
        try (var reader = SafetensorsReader.open(folder.resolve("reference.safetensors"))) {
            for (String n : reader.names()) {
                if (!n.startsWith("grad.") && !n.startsWith("after_step.")) {
                    tensors.put(n, reader.tensor(n).copy());
                }
            }
        }
        this.json = Json.read(folder.resolve("reference.json"));
    }

    /**
     * The fixture's config as transformers ran it: a BF16 or F16 checkpoint, loaded in its dtype and then computed in
     * float32, keeps inverse RoPE frequencies rounded to that dtype, which moe4j reproduces only when asked.
     */
    ModelConfig config() {
        ModelConfig config = ModelLoader.config(folder);
        return config.toBuilder().rope(config.rope().withWeightDtypeFrequencies(true)).build();
    }

    /** The fixture model on {@code backend}, configured as transformers ran it ({@link #config()}). */
    TransformerModel load(Backend backend) {
        return ModelLoader.load(folder, config(), backend, WeightMemory.AUTO);
    }

    boolean has(String tensor) {
        return tensors.containsKey(tensor);
    }

    Tensor tensor(String tensor) {
        Tensor t = tensors.get(tensor);
        if (t == null) {
            throw new IllegalArgumentException(name + ": no reference tensor " + tensor);
        }
        return t;
    }

    double[] values(String tensor) {
        Tensor t = tensor(tensor);
        double[] out = new double[(int) t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    double scalar(String tensor) {
        return tensor(tensor).getFloat(0);
    }

    /** input_ids [batch, length] flattened batch-major. */
    int[] inputIds() {
        Tensor t = tensor("input_ids");
        int[] ids = new int[(int) t.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) t.getLong(i);
        }
        return ids;
    }

    int batch() {
        return tensor("input_ids").dim(0);
    }

    int[] greedyPrompt() {
        return ints(json.get("greedy").get("prompt"));
    }

    int[] greedyOutput() {
        return ints(json.get("greedy").get("output"));
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    @Override
    public String toString() {
        return name;
    }
}
