package dev.moe4j.model.lora;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.ExpertStorage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code moe4j merge}: a base model folder with a LoRA adapter merged into its weights, W + scale · b · a, written as
 * a Hugging Face model folder of the base's family (what PEFT's merge_and_unload then save_pretrained give). The
 * adapted tensors are merged in float32 and held in memory in the output type; the others are copied from the
 * memory-mapped files. The folder is written under a temporary name and moved into place when complete.
 */
public final class AdapterMerge {
    private static final Pattern EXPERTS = Pattern.compile("(layers\\.\\d+\\.moe\\.(?:experts|shared_experts)\\.)"
            + "(gate_up_proj|gate_proj|up_proj|down_proj)");
    /** What a model folder carries beside its weights, copied from the base. */
    private static final List<String> BESIDE = List.of("tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "chat_template.jinja", "generation_config.json");

    private AdapterMerge() {
    }

    /** What a merge did. */
    public record Result(int tensorsMerged, int adapters, DType dtype) {
    }

    /** Merges {@code adapter} into {@code base} and writes the folder {@code out} in {@code dtype} (default: the base's). */
    public static Result merge(Path base, Path adapter, Path out, Optional<DType> dtype) {
        if (Files.exists(out)) {
            throw new BadInputException("--out " + out + " exists: choose a new folder");
        }
        try (TransformerModel model = ModelLoader.load(base, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            ModelConfig config = model.config();
            PeftAdapter lora = PeftAdapter.read(adapter, config);
            DType type = dtype.orElse(config.dtype());
            Map<String, Tensor> tensors = new LinkedHashMap<>(model.transformer().tensors());
            ExpertStorage storage = model.transformer().expertStorage();
            int merged = 0;
            for (String name : lora.names()) {
                Tensor delta = lora.delta(name);
                Matcher m = EXPERTS.matcher(name);
                if (!m.matches() || delta.rank() == 2) {
                    // a linear layer's, or one shared expert's projection held on its own
                    merged += add(tensors, type, name + ".weight", delta, false);
                    continue;
                }
                String prefix = m.group(1), part = m.group(2);
                boolean shared = prefix.endsWith("shared_experts.");
                if (storage == ExpertStorage.SEPARATE) {
                    for (int e = 0; e < delta.dim(0); e++) {
                        String p = shared ? prefix : prefix + e + ".";
                        Tensor d = delta.select(e);
                        if (part.equals("gate_up_proj")) {
                            int inter = d.dim(0) / 2;
                            merged += add(tensors, type, p + "gate_proj.weight", d.slice(0, inter), false);
                            merged += add(tensors, type, p + "up_proj.weight", d.slice(inter, 2 * inter), false);
                        } else {
                            merged += add(tensors, type, p + part + ".weight", d, false);
                        }
                    }
                } else {
                    if (!part.equals("gate_up_proj") && !part.equals("down_proj")) {
                        throw new BadInputException(adapter + ": adapters on " + name + " apart do not fit experts "
                                + "stored stacked");
                    }
                    merged += add(tensors, type, prefix + part, delta, storage == ExpertStorage.TRANSPOSED);
                }
            }
            try {
                Files.createDirectories(out.toAbsolutePath().getParent());
            } catch (IOException e) {
                throw new BadInputException(out + ": cannot create its parent folder (" + e.getMessage() + ")");
            }
            AtomicDirectory.replace(out, tmp -> {
                ModelSaver.save(tensors, storage, config, tmp, type, ModelSaver.DEFAULT_SHARD_BYTES);
                for (String f : BESIDE) {
                    if (Files.isRegularFile(base.resolve(f))) {
                        Files.copy(base.resolve(f), tmp.resolve(f));
                    }
                }
            });
            return new Result(merged, lora.names().size(), type);
        }
    }

    /**
     * tensors[name] = that tensor + delta (delta [out, in], or [E, out, in] for stacked experts; transposed to the
     * tensor's [E, in, out] when stored so), summed in float32 and held in {@code type}.
     */
    private static int add(Map<String, Tensor> tensors, DType type, String name, Tensor delta, boolean transposed) {
        Tensor w = tensors.get(name);
        if (w == null) {
            throw new IllegalStateException("no weight " + name + " to merge into");
        }
        Tensor out = w.to(DType.F32);
        if (transposed) {
            int e = delta.dim(0), rows = delta.dim(1), cols = delta.dim(2);
            for (int x = 0; x < e; x++) {
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        out.set(out.get(x, c, r) + delta.get(x, r, c), x, c, r);
                    }
                }
            }
        } else {
            if (out.size() != delta.size()) {
                throw new IllegalStateException(name + ": " + w + " and its update " + delta + " differ in size");
            }
            for (long i = 0; i < out.size(); i++) {
                out.setFloat(i, out.getFloat(i) + delta.getFloat(i));
            }
        }
        tensors.put(name, type == DType.F32 ? out : out.to(type));
        return 1;
    }
}
