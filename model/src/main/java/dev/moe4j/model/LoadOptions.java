package dev.moe4j.model;

import dev.moe4j.model.gguf.GgufFileType;

import java.nio.file.Path;
import java.util.Optional;

/**
 * How a CPU model's weights are held once loaded: where ({@link WeightMemory}) and, for a safetensors model, whether
 * they are quantised on the way in ({@code --quantize}: the matrices take the types {@code convert --to gguf --type}
 * would give them, in memory); and a LoRA adapter in PEFT's format to apply to them ({@code --adapter DIR}), kept
 * beside the weights rather than merged into them.
 */
public record LoadOptions(WeightMemory memory, Optional<GgufFileType> quantize, Optional<Path> adapter) {
    /** Copied when they fit, otherwise mapped; as stored. */
    public static final LoadOptions DEFAULT = new LoadOptions(WeightMemory.AUTO, Optional.empty());

    public LoadOptions {
        quantize.ifPresent(t -> {
            if (!t.isQuantized()) {
                throw new IllegalArgumentException("--quantize takes a quantised type, got " + t);
            }
        });
    }

    public LoadOptions(WeightMemory memory, Optional<GgufFileType> quantize) {
        this(memory, quantize, Optional.empty());
    }

    /** Where the weights live, as stored. */
    public static LoadOptions of(WeightMemory memory) {
        return new LoadOptions(memory, Optional.empty());
    }

    /** These options with the adapter in {@code folder}. */
    public LoadOptions withAdapter(Path folder) {
        return new LoadOptions(memory, quantize, Optional.of(folder));
    }
}
