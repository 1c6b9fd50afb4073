package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.ResidentMemory;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.gguf.GgufModel;
import dev.moe4j.model.gguf.LoadQuantization;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeLayer;

import dev.moe4j.model.lora.AdaptedWeights;
import dev.moe4j.model.lora.LoraSettings;
import dev.moe4j.model.lora.PeftAdapter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Opens a Hugging Face model folder (config.json plus model.safetensors, or shards with their index) or a GGUF file
 * ({@link GgufModel}) as a {@link TransformerModel}: the family of the config's model_type maps the config and the
 * tensor names (llama.cpp's names for GGUF, {@link StoredWeights}); every tensor is checked (present, shape, type, nothing left over) before the model can run; the weights keep their
 * stored type, copied into memory or left memory-mapped ({@link WeightMemory}).
 */
public final class ModelLoader {
    /** The quant_method values of pre-quantised Hugging Face checkpoints that {@link PrequantisedWeights} reads. */
    private static final java.util.Set<String> PREQUANTISED = java.util.Set.of("mxfp4", "fp8");

    private ModelLoader() {
    }

    public static TransformerModel load(Path folder) {
        return load(folder, CpuBackend.INSTANCE);
    }

    /**
     * Opens a model folder for inference on {@code backend}'s device. On the CPU the weights stay memory-mapped;
     * on another device each is copied there as it is checked (matrices in the device's activation dtype, BF16 on
     * a GPU, vectors in F32) and the files are closed again.
     */
    public static TransformerModel load(Path folder, Backend backend) {
        return load(folder, backend, WeightMemory.AUTO);
    }

    /**
     * As {@link #load(Path, Backend)}, with the CPU's weights where {@code memory} says: copied into memory (the
     * files are then closed again) or left mapped. A GPU takes its own copy whatever {@code memory} says.
     */
    public static TransformerModel load(Path folder, Backend backend, WeightMemory memory) {
        return load(folder, config(folder), backend, LoadOptions.of(memory));
    }

    /**
     * As {@link #load(Path, Backend, WeightMemory)}, with the matrices of a safetensors model quantised into memory
     * when {@code options} asks (on the CPU only; a GGUF file keeps the types it was written with).
     */
    public static TransformerModel load(Path folder, Backend backend, LoadOptions options) {
        return load(folder, config(folder), backend, options);
    }

    /**
     * As {@link #load(Path, Backend, WeightMemory)}, but the model is built from {@code config} (the folder's own,
     * changed where a comparison needs it: transformers' BF16-rounded RoPE frequencies, say) rather than read again.
     */
    public static TransformerModel load(Path folder, ModelConfig config, Backend backend, WeightMemory memory) {
        return load(folder, config, backend, LoadOptions.of(memory));
    }

    /** As {@link #load(Path, ModelConfig, Backend, WeightMemory)}, quantising where {@code options} asks. */
    public static TransformerModel load(Path folder, ModelConfig config, Backend backend, LoadOptions options) {
        if (options.quantize().isPresent()) {
            String type = options.quantize().get().name().toLowerCase(java.util.Locale.ROOT);
            if (GgufModel.isGguf(folder)) {
                throw new BadInputException(folder + ": --quantize " + type + " quantises a safetensors model as it "
                        + "loads; a GGUF file keeps its own types (moe4j quantize IN.gguf OUT.gguf " + type
                        + " rewrites it)");
            }
            if (!backend.device().isHost()) {
                throw new BadInputException("--quantize " + type + ": quantised weights run on the CPU; use "
                        + "--device cpu");
            }
        }
        if (options.adapter().isPresent() && !backend.device().isHost()) {
            throw new BadInputException("--adapter: LoRA adapters run on the CPU for now; use --device cpu");
        }
        if (!backend.device().isHost()) {
            config.moe().ifPresent(moe -> {
                var missing = MoeLayer.unsupportedOnDevice(moe);
                if (!missing.isEmpty()) {
                    Path source = GgufModel.isGguf(folder) ? folder : folder.resolve("config.json");
                    throw new BadInputException(source + ": the MoE layers use "
                            + String.join(" and ", missing) + ", which " + backend.device().name()
                            + " does not run yet; use --device cpu");
                }
            });
        }
        StoredWeights checkpoint = stored(folder, config);
        boolean host = backend.device().isHost();
        ResidentMemory copies = null;
        try {
            LoadQuantization quantization = options.quantize().map(t -> LoadQuantization.of(t, config)).orElse(null);
            // quantised weights exist only as copies; the file's float values are read once, as they are converted
            if (host && (quantization != null || options.memory().copies(checkpoint.byteSize()))) {
                copies = new ResidentMemory();
            }
            var weights = new CheckpointWeights(checkpoint, config, copies, quantization);
            AdaptedWeights adapted = options.adapter().map(a -> AdaptedWeights.of(weights, PeftAdapter.read(a, config)))
                    .orElse(null);
            Transformer transformer = adapted != null ? new Transformer(config, adapted)
                    : host ? new Transformer(config, weights) : Transformer.placed(config, weights, backend, false);
            weights.requireAllUsed();
            if (adapted != null) {
                adapted.requireAllUsed();
            }
            if (host && copies == null) {
                return new TransformerModel(transformer, checkpoint, folder);
            }
            // The weights are copies, in memory or on the device: the files are no longer needed.
            checkpoint.close();
            return new TransformerModel(transformer, copies, folder);
        } catch (RuntimeException e) {
            checkpoint.close();
            if (copies != null) {
                copies.close();
            }
            throw e;
        }
    }

    /**
     * Opens a model folder for training: the same checks as {@link #load}, but every weight is copied into a
     * trainable F32 parameter and the experts are stacked ([E, 2I, H], [E, H, I]) whatever the checkpoint's layout,
     * so that the files are closed again before this returns.
     */
    public static Transformer loadForTraining(Path folder) {
        ModelConfig config = config(folder);
        try (StoredWeights checkpoint = stored(folder, config)) {
            var weights = new CheckpointWeights(checkpoint, config);
            Transformer transformer = new Transformer(config, new TrainableWeights(weights));
            weights.requireAllUsed();
            return transformer;
        }
    }

    /**
     * Opens a model folder (or a GGUF file of float weights) for LoRA fine-tuning: its weights frozen, in their stored
     * type (F32, BF16, F16), copied or left memory-mapped as {@code memory} says, and LoRA adapters beside them: new ones made as {@code settings} say,
     * or, with {@code adapter}, those of a PEFT adapter folder (to go on training them). Only the adapters take
     * gradients. The weights' files stay open until the returned model is closed.
     */
    public static TransformerModel loadForLora(Path folder, WeightMemory memory, LoraSettings settings,
                                               Optional<Path> adapter) {
        ModelConfig config = config(folder);
        StoredWeights checkpoint = stored(folder, config);
        ResidentMemory copies = memory.copies(checkpoint.byteSize()) ? new ResidentMemory() : null;
        try {
            var weights = new CheckpointWeights(checkpoint, config, copies, null);
            AdaptedWeights adapted = adapter.isPresent() ? AdaptedWeights.of(weights, PeftAdapter.read(adapter.get(), config))
                    : AdaptedWeights.fresh(weights, settings, config);
            Transformer transformer = new Transformer(config, adapted);
            weights.requireAllUsed();
            adapted.requireAllUsed();
            transformer.tensors().forEach((name, t) -> {
                if (t.dtype().isBlockQuantized()) {
                    throw new BadInputException(folder + ": " + name + " is " + t.dtype() + "; LoRA trains beside F32, "
                            + "BF16 or F16 weights (training through quantised weights, QLoRA, is not supported yet)");
                }
            });
            if (copies == null) {
                return new TransformerModel(transformer, checkpoint, folder);
            }
            checkpoint.close();
            return new TransformerModel(transformer, copies, folder);
        } catch (RuntimeException e) {
            checkpoint.close();
            if (copies != null) {
                copies.close();
            }
            throw e;
        }
    }

    /**
     * As {@link #loadForTraining(Path)}, but the model is built from {@code as} (which must describe the same
     * weights) rather than from the folder's config.json, whose family still names the tensors: a trainer resumes
     * its own model, with its training options, from a checkpoint saved in a Hugging Face family's format.
     */
    public static Transformer loadForTraining(Path folder, ModelConfig as) {
        ModelConfig stored = config(folder);
        try (StoredWeights checkpoint = stored(folder, stored, as)) {
            var weights = new CheckpointWeights(checkpoint, as);
            Transformer transformer = new Transformer(as, new TrainableWeights(weights));
            weights.requireAllUsed();
            return transformer;
        }
    }

    /**
     * The checked weights of a model folder by moe4j name, memory-mapped, without building a model to run: the
     * weights are those the model asks for as it is built, checked as {@link #load} checks them.
     */
    public static ModelWeights weights(Path folder) {
        ModelConfig config = config(folder);
        StoredWeights checkpoint = stored(folder, config);
        try {
            var checked = new CheckpointWeights(checkpoint, config);
            Transformer model = new Transformer(config, checked);
            checked.requireAllUsed();
            return new ModelWeights(folder, config, model.tensors(), checkpoint);
        } catch (RuntimeException e) {
            checkpoint.close();
            throw e;
        }
    }

    /**
     * The config of a model: a folder's config.json through its family, or a GGUF file's metadata; refusing what
     * moe4j cannot run.
     */
    public static ModelConfig config(Path folder) {
        if (GgufModel.isGguf(folder)) {
            return GgufModel.config(folder);
        }
        if (!Files.isDirectory(folder)) {
            throw new BadInputException(folder + ": not a model folder (expected a folder with config.json and "
                    + "safetensors weights)");
        }
        Path configFile = folder.resolve("config.json");
        if (!Files.isRegularFile(configFile)) {
            throw new BadInputException(folder + ": no config.json in this folder");
        }
        ModelConfig config = HfFamilies.load(configFile);
        config.quantization().filter(q -> !PREQUANTISED.contains(q)).ifPresent(q -> {
            throw new BadInputException(configFile + ": quantization_config.quant_method '" + q + "' is not read by "
                    + "moe4j (it reads F32, BF16 and F16 checkpoints, 'mxfp4' and 'fp8' ones, and GGUF files)");
        });
        return config;
    }

    /** The tensors of a model folder's checkpoint or of a GGUF file, for a model of {@code config}. */
    private static StoredWeights stored(Path path, ModelConfig config) {
        return stored(path, config, config);
    }

    /** As {@link #stored(Path, ModelConfig)}, {@code stored} being the checkpoint's own config (its names). */
    private static StoredWeights stored(Path path, ModelConfig stored, ModelConfig config) {
        if (GgufModel.isGguf(path)) {
            return GgufModel.weights(path, config);
        }
        SafetensorsWeights weights = SafetensorsWeights.open(path, stored, config);
        return stored.quantization().isPresent() ? PrequantisedWeights.open(path.resolve("config.json"), weights)
                : weights;
    }
}
