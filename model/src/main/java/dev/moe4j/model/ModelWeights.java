package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.config.ModelConfig;

import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A model folder's weights by moe4j's names (listed in {@code WeightSource}), each checked as {@link ModelLoader}
 * checks them for inference (present, of the shape config.json implies, F32/BF16/F16, nothing left over), as views
 * of the memory-mapped files in their stored type. For tools that read a checkpoint without running it, such as
 * the GGUF converter. Closing unmaps the files.
 *
 * @param tensors by moe4j's names, as {@link dev.moe4j.model.transformer.Transformer#tensors()} gives them
 */
public record ModelWeights(Path folder, ModelConfig config, Map<String, Tensor> tensors,
                           StoredWeights checkpoint)
        implements AutoCloseable {
    public ModelWeights {
        tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
    }

    /** The weight called {@code name}; every weight the model has is here, so a missing one is moe4j's mistake. */
    public Tensor get(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(folder + ": a " + config.family() + " model has no weight '" + name
                    + "'");
        }
        return t;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    @Override
    public void close() {
        checkpoint.close();
    }
}
