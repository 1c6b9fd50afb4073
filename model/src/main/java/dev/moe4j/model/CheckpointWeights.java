package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.ResidentMemory;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.gguf.LoadQuantization;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.WeightSource;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The weights of a checkpoint (safetensors or GGUF, see {@link StoredWeights}), handed to a {@code Transformer} in
 * their stored type (F32, BF16 or F16, which the kernels widen on the fly, or a block-quantised matrix), as views of
 * the memory-mapped files or as copies in {@link ResidentMemory}. Each weight is checked as it is asked for: a
 * missing tensor, another shape or a type the kernels cannot read is an error naming the file and the tensor.
 * After the model is built, {@link #requireAllUsed} refuses tensors the model has no place for, so a checkpoint
 * that does not match its config fails before anything runs.
 */
final class CheckpointWeights implements WeightSource {
    private final StoredWeights stored;
    private final String family;
    private final Set<String> used = new HashSet<>();
    private final ResidentMemory copies;
    private final LoadQuantization quantization;

    CheckpointWeights(StoredWeights stored, ModelConfig config) {
        this(stored, config, null, null);
    }

    /**
     * @param copies       where each weight is copied as it is asked for, or null to hand out views of the mapped files
     * @param quantization the rules that quantise float matrices into {@code copies}, or null to keep stored types
     */
    CheckpointWeights(StoredWeights stored, ModelConfig config, ResidentMemory copies, LoadQuantization quantization) {
        if (quantization != null && copies == null) {
            throw new IllegalArgumentException("quantised weights are held in memory: copies are needed");
        }
        this.stored = stored;
        this.copies = copies;
        this.quantization = quantization;
        this.family = config.family();
    }

    @Override
    public Var weight(String name, int... shape) {
        StoredWeights.Stored w = stored.find(name).orElseThrow(() -> new BadInputException(stored.location()
                + ": missing tensor '" + stored.storedName(name) + "' of shape " + Arrays.toString(shape) + " that a "
                + family + " model with this " + stored.describedBy() + " needs"));
        Tensor t = w.tensor();
        if (!Arrays.equals(t.shape(), shape)) {
            throw new BadInputException(w.file() + ": tensor '" + w.label() + "' has shape "
                    + Arrays.toString(t.shape()) + "; " + stored.describedBy() + " implies " + Arrays.toString(shape));
        }
        DType type = t.dtype();
        // Block-quantised types hold whole blocks per row: matrices only (llama.cpp never quantises a vector).
        if (!type.isKernelFloat() && !(type.isBlockQuantized() && shape.length >= 2)) {
            throw new BadInputException(w.file() + ": tensor '" + w.label() + "' is " + type
                    + "; moe4j reads F32, BF16 and F16 weights, and block-quantised matrices from GGUF files");
        }
        used.add(w.name());
        if (copies == null) {
            return Var.constant(t);
        }
        if (quantization != null && type.isKernelFloat()) {
            var quantised = quantization.typeOf(name, shape);
            if (quantised.isPresent()) {
                return Var.constant(copies.quantisedCopyOf(t, quantised.get()));
            }
        }
        return Var.constant(copies.copyOf(t));
    }

    @Override
    public ExpertStorage expertStorage() {
        return stored.expertStorage();
    }

    /** Refuses a checkpoint that holds tensors the model has no place for (what transformers also ignores aside). */
    void requireAllUsed() {
        List<StoredWeights.Leftover> extra = stored.leftOver(used);
        if (!extra.isEmpty()) {
            var first = extra.getFirst();
            throw new BadInputException(first.file() + ": unexpected tensor '" + first.name() + "' that a " + family
                    + " model with this " + stored.describedBy() + " does not have"
                    + (extra.size() > 1 ? " (and " + (extra.size() - 1) + " more)" : ""));
        }
    }
}
