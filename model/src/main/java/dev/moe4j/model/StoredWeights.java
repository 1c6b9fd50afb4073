package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.transformer.ExpertStorage;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The tensors of one checkpoint as {@link ModelLoader} reads them, whatever the format: safetensors files named by a
 * Hugging Face family, or one GGUF file under llama.cpp's names. A source maps moe4j's weight names to its own
 * tensors and hands out views of them (mapped, in their stored type); the checks and the copying are
 * {@code CheckpointWeights}', the same for every format.
 */
public interface StoredWeights extends AutoCloseable {
    /**
     * A weight as stored.
     *
     * @param name   the stored tensor the weight is taken from (what "used" means)
     * @param label  how messages name the weight: the stored name, or a part of it (one expert of a stacked tensor)
     * @param file   the file that holds it
     * @param tensor a view of the stored data with the weight's shape
     */
    record Stored(String name, String label, Path file, Tensor tensor) {
    }

    /** The stored name of moe4j's weight {@code name}, for a message when it is missing. */
    String storedName(String name);

    /** moe4j's weight {@code name}, or empty when the checkpoint does not hold it. */
    Optional<Stored> find(String name);

    /** The checkpoint, as messages name it: a folder, an index or a file. */
    Path location();

    /** What declares the model's shape, for messages: "config.json", "GGUF metadata". */
    String describedBy();

    /** How the experts are stored: as the source hands them to the model. */
    ExpertStorage expertStorage();

    /** Bytes of tensor data, to decide whether copies fit in memory. */
    long byteSize();

    /**
     * The stored tensors that no weight was taken from and that the checkpoint may not carry beside the model,
     * sorted, each with its file.
     */
    List<Leftover> leftOver(Set<String> used);

    /** A stored tensor the model has no place for. */
    record Leftover(String name, Path file) {
    }

    @Override
    void close();
}
