package dev.moe4j.model.lora;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * The LoRA parity cases: a fixture model of each family with the targets its adapters cover. For each,
 * {@code fixtures/lora/<case>/} holds {@code peft/} (an adapter PEFT made, with seeded non-zero matrices),
 * {@code moe4j/} (one moe4j made, for PEFT to load) and {@code reference.safetensors} (what transformers 5.17 and PEFT
 * computed on the GPU machine, scripts/device/make_lora_fixtures.py).
 */
record LoraCases(String name, int rank, List<String> targets) {
    static final List<LoraCases> ALL = List.of(
            new LoraCases("qwen3-moe", 4, List.of("q_proj", "k_proj", "v_proj", "o_proj", "experts", "router")),
            new LoraCases("mixtral", 2, List.of("q_proj", "k_proj", "v_proj", "o_proj", "experts", "router")),
            new LoraCases("qwen2-moe", 2, List.of("q_proj", "v_proj", "experts", "shared_experts", "router")),
            new LoraCases("olmoe", 2, List.of("o_proj", "experts")),
            new LoraCases("deepseek-v3", 2, List.of("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj",
                    "o_proj", "experts", "shared_experts", "router")),
            new LoraCases("gpt-oss", 2, List.of("q_proj", "k_proj", "v_proj", "o_proj", "experts", "router")));

    static LoraCases named(String name) {
        return ALL.stream().filter(c -> c.name.equals(name)).findFirst().orElseThrow();
    }

    LoraSettings settings() {
        return new LoraSettings(rank, 2.0 * rank, targets, false, 17);
    }

    Path base() {
        return Resources.fixture(name);
    }

    Path folder() {
        return Resources.fixture("lora/" + name);
    }

    /** The base model with new adapters of the case's settings, every matrix then drawn N(0, 0.1²) from a seed. */
    TransformerModel withRandomAdapters(long seed) {
        TransformerModel m = dev.moe4j.model.ModelLoader.loadForLora(base(), WeightMemory.MAPPED, settings(),
                Optional.empty());
        var random = new Random(seed);
        for (Parameter p : m.transformer().adapters().values()) {
            Tensor t = p.value();
            for (long i = 0; i < t.size(); i++) {
                t.setFloat(i, (float) (random.nextGaussian() * 0.1));
            }
        }
        return m;
    }

    /** The reference tensors of the case, or empty before the device has made them. */
    Map<String, Tensor> reference() {
        Path file = folder().resolve("reference.safetensors");
        var out = new LinkedHashMap<String, Tensor>();
        if (!Files.isRegularFile(file)) {
            return out;
        }
        try (var reader = SafetensorsReader.open(file)) {
            for (String n : reader.names()) {
                out.put(n, reader.tensor(n).copy());
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return name;
    }
}
