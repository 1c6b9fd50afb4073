package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.ResidentMemory;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.io.safetensors.TensorEntry;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.TensorNames;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.WeightSource;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The weights of a checkpoint, handed to a {@code Transformer} in their stored type (F32, BF16 or F16; the kernels
 * widen on the fly), as views of the memory-mapped files or as copies in {@link ResidentMemory}. Each weight is checked as it is asked for: a
 * missing tensor, another shape or a type the kernels cannot read is an error naming the file and the tensor.
 * After the model is built, {@link #requireAllUsed} refuses tensors the model has no place for, so a checkpoint
 * that does not match its config.json fails before anything runs.
 */
final class CheckpointWeights implements WeightSource {
    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\..*");

    private final Checkpoint checkpoint;
    private final TensorNames names;
    private final ModelConfig config;
    private final String family;
    private final Set<String> used = new HashSet<>();
    private final ResidentMemory copies;

    CheckpointWeights(Checkpoint checkpoint, TensorNames names, ModelConfig config) {
        this(checkpoint, names, config, null);
    }

    /** @param copies where each weight is copied as it is asked for, or null to hand out views of the mapped files */
    CheckpointWeights(Checkpoint checkpoint, TensorNames names, ModelConfig config, ResidentMemory copies) {
        this.copies = copies;
        this.checkpoint = checkpoint;
        this.names = names;
        this.config = config;
        this.family = config.family();
    }

    @Override
    public Var weight(String name, int... shape) {
        String stored = names.toCheckpoint(name);
        if (!checkpoint.contains(stored)) {
            throw new BadInputException(checkpoint.location() + ": missing tensor '" + stored + "' of shape "
                    + Arrays.toString(shape) + " that a " + family + " model with this config.json needs");
        }
        TensorEntry entry = checkpoint.entry(stored);
        String file = checkpoint.fileOf(stored).path().toString();
        if (!Arrays.equals(entry.dims(), shape)) {
            throw new BadInputException(file + ": tensor '" + stored + "' has shape " + Arrays.toString(entry.dims())
                    + "; config.json implies " + Arrays.toString(shape));
        }
        if (!entry.dtype().isKernelFloat()) {
            throw new BadInputException(file + ": tensor '" + stored + "' is " + entry.dtype()
                    + "; moe4j reads F32, BF16 and F16 weights (quantised checkpoints are not supported yet)");
        }
        used.add(stored);
        Tensor t = checkpoint.tensor(stored);
        return Var.constant(copies == null ? t : copies.copyOf(t));
    }

    @Override
    public ExpertStorage expertStorage() {
        return names.experts();
    }

    /** Refuses a checkpoint that holds tensors the model has no place for (what transformers also ignores aside). */
    void requireAllUsed() {
        List<String> extra = checkpoint.names().stream().filter(n -> !used.contains(n) && !ignored(n)).sorted().toList();
        if (!extra.isEmpty()) {
            String name = extra.getFirst();
            throw new BadInputException(checkpoint.fileOf(name).path() + ": unexpected tensor '" + name
                    + "' that a " + family + " model with this config.json does not have"
                    + (extra.size() > 1 ? " (and " + (extra.size() - 1) + " more)" : ""));
        }
    }

    /**
     * Tensors a checkpoint may carry beside the model: a tied LM head stored anyway (transformers ties it to the
     * embeddings after loading), rotary frequency buffers of older exports, and DeepSeek's multi-token-prediction
     * layers after the last decoder layer.
     */
    private boolean ignored(String name) {
        if (config.tieEmbeddings() && names.toMoe4j(name).equals(Optional.of("lm_head.weight"))) {
            return true;
        }
        if (name.endsWith("rotary_emb.inv_freq")) {
            return true;
        }
        Matcher m = LAYER.matcher(name);
        return config.mtpLayers() > 0 && m.matches() && Integer.parseInt(m.group(1)) >= config.numLayers()
                && Integer.parseInt(m.group(1)) < config.numLayers() + config.mtpLayers();
    }
}
