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
}
