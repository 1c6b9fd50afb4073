package dev.moe4j.model;

import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.family.TensorNames;
import dev.moe4j.model.transformer.ExpertStorage;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Hugging Face checkpoint (one model.safetensors, or shards with their index) under the names of its config's
 * family.
 */
final class SafetensorsWeights implements StoredWeights {
    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\..*");

    private final Checkpoint checkpoint;
    private final TensorNames names;
    private final ModelConfig config;

    private SafetensorsWeights(Checkpoint checkpoint, TensorNames names, ModelConfig config) {
        this.checkpoint = checkpoint;
        this.names = names;
        this.config = config;
    }

    /** Opens the checkpoint of a model folder whose config.json was read into {@code config}. */
    static SafetensorsWeights open(Path folder, ModelConfig config) {
        return open(folder, config, config);
    }

    /** As {@link #open(Path, ModelConfig)}, the names taken from the family of {@code stored}, the folder's own. */
    static SafetensorsWeights open(Path folder, ModelConfig stored, ModelConfig config) {
        TensorNames names = HfFamilies.find(stored.family()).orElseThrow().tensorNames();
        return new SafetensorsWeights(Checkpoint.open(folder), names, config);
    }

    Checkpoint checkpoint() {
        return checkpoint;
    }

    @Override
    public String storedName(String name) {
        return names.toCheckpoint(name);
    }

    @Override
    public Optional<Stored> find(String name) {
        String stored = names.toCheckpoint(name);
        if (!checkpoint.contains(stored)) {
            return Optional.empty();
        }
        return Optional.of(new Stored(stored, stored, checkpoint.fileOf(stored).path(), checkpoint.tensor(stored)));
    }

    @Override
    public Path location() {
        return checkpoint.location();
    }

    @Override
    public String describedBy() {
        return "config.json";
    }

    @Override
    public ExpertStorage expertStorage() {
        return names.experts();
    }

    @Override
    public long byteSize() {
        return checkpoint.byteSize();
    }

    @Override
    public List<Leftover> leftOver(Set<String> used) {
        return checkpoint.names().stream().filter(n -> !used.contains(n) && !ignored(n)).sorted()
                .map(n -> new Leftover(n, checkpoint.fileOf(n).path())).toList();
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

    @Override
    public void close() {
        checkpoint.close();
    }
}
