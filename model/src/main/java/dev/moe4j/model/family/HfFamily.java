package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.model.config.ModelConfig;

/**
 * One Hugging Face architecture family: how its config.json maps onto a {@link ModelConfig} and back. Each family
 * lives in its own file and documents, where it reads them, the fields of its transformers configuration class.
 */
public interface HfFamily {
    /** The config.json {@code model_type}, e.g. "mixtral". */
    String modelType();

    /** The transformers class written to {@code architectures}, e.g. "MixtralForCausalLM". */
    String architecture();

    /** Maps a config.json of this family onto a ModelConfig; missing fields take transformers' defaults. */
    ModelConfig read(ConfigFields config);

    /**
     * Writes a config.json of this family that describes {@code config}, in the older field forms every loader
     * reads ({@code rope_theta}/{@code rope_scaling}, {@code torch_dtype}).
     *
     * @throws dev.moe4j.core.BadInputException when the family cannot express something the config holds
     */
    ObjectNode write(ModelConfig config);

    /** How this family's checkpoints name moe4j's weights, both ways. */
    TensorNames tensorNames();

    /**
     * The name transformers 5 gives a moe4j weight in memory, where PEFT's adapters point: the checkpoint's name, but
     * routed experts are fused parameters of {@code model.layers.N.mlp.experts} ({@code gate_up_proj} [E, 2I, H],
     * {@code down_proj} [E, H, I]; gpt-oss's transposed) in every family, however the checkpoint stores them.
     */
    default String transformersName(String moe4jName) {
        var fused = java.util.regex.Pattern.compile("layers\\.(\\d+)\\.moe\\.experts\\.(gate_up_proj|down_proj)")
                .matcher(moe4jName);
        if (fused.matches()) {
            return "model.layers." + fused.group(1) + ".mlp.experts." + fused.group(2);
        }
        return tensorNames().toCheckpoint(moe4jName);
    }
}
