package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.CheckpointWriter;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.family.HfFamily;
import dev.moe4j.model.family.TensorNames;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.Transformer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Saves a {@link Transformer} as a Hugging Face model folder of one family: its config.json and its weights under
 * the family's tensor names, in the family's expert layout, in a chosen dtype. Stacked experts (as training keeps
 * them) are written per expert as views of the stacked tensors, or transposed for gpt-oss, as are per-expert ones
 * (random weights for benchmarks); the selection bias
 * stays F32, as transformers keeps it.
 */
public final class ModelSaver {
    /** Shards of at most this many bytes, as save_pretrained's default max_shard_size (5 GB). */
    public static final long DEFAULT_SHARD_BYTES = 5_000_000_000L;

    private static final Pattern STACKED = Pattern.compile("(layers\\.\\d+\\.moe\\.(?:experts|shared_experts)\\.)"
            + "(gate_up_proj|down_proj|gate_up_proj_bias|down_proj_bias)");
    private static final Pattern SEPARATE = Pattern.compile("(layers\\.\\d+\\.moe\\.experts\\.)"
            + "(\\d+\\.(?:gate|up|down)_proj\\.(?:weight|bias))");

    private ModelSaver() {
    }

    /**
     * Writes config.json (declaring {@code dtype}) and the weights, converted to {@code dtype}, into
     * {@code folder} as {@code family} names them.
     */
    public static void save(Transformer model, Path folder, String family, DType dtype, long maxShardBytes) {
        save(model, model.config().toBuilder().family(family).build(), folder, dtype, maxShardBytes);
    }

    /**
     * Writes {@code model}'s weights under the config {@code as}, which must describe the same weights in the family
     * it names: a trainer saves its model without the options that only training uses (noise, balance losses a
     * family has no field for), so that a family which cannot express them still gets the checkpoint.
     */
    public static void save(Transformer model, ModelConfig as, Path folder, DType dtype, long maxShardBytes) {
        save(model.tensors(), model.expertStorage(), as, folder, dtype, maxShardBytes);
    }

    /**
     * Writes {@code tensors} (by moe4j's names, experts held as {@code storage}) as a checkpoint of {@code as}:
     * what {@link #save(Transformer, ModelConfig, Path, DType, long)} writes for a model's own tensors.
     */
    public static void save(Map<String, Tensor> tensors, ExpertStorage storage, ModelConfig as, Path folder,
                            DType dtype, long maxShardBytes) {
        String family = as.family();
        ModelConfig config = as.toBuilder().dtype(dtype).quantization(null).build();
        HfFamily target = HfFamilies.find(family).orElseThrow(() -> new BadInputException(
                "cannot save as '" + family + "': not a supported model_type; supported: " + HfFamilies.supported()));
        var configJson = HfFamilies.toJson(config, family); // refuses what the family cannot express, before any write
        TensorNames names = target.tensorNames();
        var out = new TreeMap<String, Tensor>();
        for (var e : perStorage(tensors, storage, names.experts(), family).entrySet()) {
            // Buffers the router moves in place stay F32, as transformers keeps e_score_correction_bias.
            boolean keepF32 = e.getKey().endsWith("router.selection_bias") || e.getKey().endsWith("router.expert_thresholds");
            Tensor t = e.getValue();
            out.put(names.toCheckpoint(e.getKey()), keepF32 || t.dtype() == dtype ? t : t.to(dtype));
        }
        try {
            Files.createDirectories(folder);
        } catch (IOException e) {
            throw new BadInputException(folder + ": cannot create the folder (" + e.getMessage() + ")", e);
        }
        CheckpointWriter.write(folder, out, maxShardBytes, Map.of("format", "pt"));
        AtomicFiles.writeString(folder.resolve("config.json"), Json.pretty(configJson) + "\n");
    }

    /** The model's tensors with its experts in the layout a family stores. */
    private static Map<String, Tensor> perStorage(Map<String, Tensor> tensors, ExpertStorage from, ExpertStorage storage,
                                                  String family) {
        if (from == storage) {
            return tensors;
        }
        if (from == ExpertStorage.SEPARATE && storage == ExpertStorage.TRANSPOSED) {
            return interleavedTransposed(tensors);
        }
        if (from != ExpertStorage.STACKED) {
            throw new BadInputException("cannot save as " + family + ": its checkpoints hold experts " + storage
                    + ", this model holds them " + from);
        }
        var out = new LinkedHashMap<String, Tensor>();
        for (var e : tensors.entrySet()) {
            Matcher m = STACKED.matcher(e.getKey());
            if (!m.matches()) {
                out.put(e.getKey(), e.getValue());
                continue;
            }
            String prefix = m.group(1), part = m.group(2);
            Tensor t = e.getValue();
            if (storage == ExpertStorage.TRANSPOSED) {
                out.put(e.getKey(), part.endsWith("bias") ? t : transposed(t));
                continue;
            }
            boolean shared = prefix.endsWith("shared_experts.");
            for (int x = 0; x < t.dim(0); x++) {
                String p = shared ? prefix : prefix + x + ".";
                Tensor one = t.select(x);
                switch (part) {
                    case "gate_up_proj" -> {
                        int inter = one.dim(0) / 2;
                        out.put(p + "gate_proj.weight", one.slice(0, inter));
                        out.put(p + "up_proj.weight", one.slice(inter, 2 * inter));
                    }
                    case "down_proj" -> out.put(p + "down_proj.weight", one);
                    case "gate_up_proj_bias" -> {
                        int inter = one.dim(0) / 2;
                        out.put(p + "gate_proj.bias", one.slice(0, inter));
                        out.put(p + "up_proj.bias", one.slice(inter, 2 * inter));
                    }
                    default -> out.put(p + "down_proj.bias", one);
                }
            }
        }
        return out;
    }

    /**
     * Per-expert gate, up and down (with their biases) as gpt-oss stores them: gate_up_proj [E, H, 2I] with gate
     * row i in column 2i and up row i in column 2i + 1, down_proj [E, I, H], gate_up_proj_bias [E, 2I] interleaved
     * alike, down_proj_bias [E, H] (copies: saving only).
     */
    private static Map<String, Tensor> interleavedTransposed(Map<String, Tensor> tensors) {
        var out = new LinkedHashMap<String, Tensor>();
        var layers = new TreeMap<String, Map<String, Tensor>>(); // "layers.N.moe.experts." -> "E.part" -> tensor
        for (var e : tensors.entrySet()) {
            Matcher m = SEPARATE.matcher(e.getKey());
            if (m.matches()) {
                layers.computeIfAbsent(m.group(1), k -> new HashMap<>()).put(m.group(2), e.getValue());
            } else {
                out.put(e.getKey(), e.getValue());
            }
        }
        for (var layer : layers.entrySet()) {
            Map<String, Tensor> parts = layer.getValue();
            Tensor down0 = parts.get("0.down_proj.weight");
            int experts = (int) parts.keySet().stream().filter(k -> k.endsWith("down_proj.weight")).count();
            int hidden = down0.dim(0), inter = down0.dim(1);
            Tensor gateUp = Tensor.zeros(down0.dtype(), experts, hidden, 2 * inter);
            Tensor down = Tensor.zeros(down0.dtype(), experts, inter, hidden);
            boolean biases = parts.containsKey("0.down_proj.bias");
            Tensor gateUpBias = biases ? Tensor.zeros(down0.dtype(), experts, 2 * inter) : null;
            Tensor downBias = biases ? Tensor.zeros(down0.dtype(), experts, hidden) : null;
            for (int x = 0; x < experts; x++) {
                Tensor gate = parts.get(x + ".gate_proj.weight"), up = parts.get(x + ".up_proj.weight");
                Tensor d = parts.get(x + ".down_proj.weight");
                for (int i = 0; i < inter; i++) {
                    for (int h = 0; h < hidden; h++) {
                        gateUp.set(gate.get(i, h), x, h, 2 * i);
                        gateUp.set(up.get(i, h), x, h, 2 * i + 1);
                        down.set(d.get(h, i), x, i, h);
                    }
                }
                if (biases) {
                    for (int i = 0; i < inter; i++) {
                        gateUpBias.set(parts.get(x + ".gate_proj.bias").get(i), x, 2 * i);
                        gateUpBias.set(parts.get(x + ".up_proj.bias").get(i), x, 2 * i + 1);
                    }
                    downBias.select(x).copyFrom(parts.get(x + ".down_proj.bias"));
                }
            }
            out.put(layer.getKey() + "gate_up_proj", gateUp);
            out.put(layer.getKey() + "down_proj", down);
            if (biases) {
                out.put(layer.getKey() + "gate_up_proj_bias", gateUpBias);
                out.put(layer.getKey() + "down_proj_bias", downBias);
            }
        }
        return out;
    }

    /** [E, rows, cols] → [E, cols, rows] (a copy: saving only). */
    private static Tensor transposed(Tensor t) {
        int e = t.dim(0), rows = t.dim(1), cols = t.dim(2);
        Tensor out = Tensor.zeros(t.dtype(), e, cols, rows);
        for (int x = 0; x < e; x++) {
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    out.set(t.get(x, r, c), x, c, r);
                }
            }
        }
        return out;
    }
}
