package dev.moe4j.model.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.family.ConfigFields;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * A model's generation_config.json: the decoding defaults its authors chose (sampling or greedy, temperature,
 * top-k, top-p, ...) and the ids that end a reply. Every field is optional; an absent one leaves the choice to
 * {@link SamplingConfig#DEFAULTS} or to the command line.
 *
 * @param eosTokenIds the ids that end generation ({@code eos_token_id}: one id or a list)
 */
public record GenerationConfig(Optional<Boolean> doSample, OptionalDouble temperature, OptionalInt topK,
                               OptionalDouble topP, OptionalDouble minP, OptionalDouble repetitionPenalty,
                               OptionalInt maxNewTokens, OptionalInt maxLength, List<Integer> eosTokenIds) {
    /** The file name beside config.json. */
    public static final String FILE = "generation_config.json";

    public GenerationConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    /** A model without a generation_config.json. */
    public static GenerationConfig none() {
        return new GenerationConfig(Optional.empty(), OptionalDouble.empty(), OptionalInt.empty(),
                OptionalDouble.empty(), OptionalDouble.empty(), OptionalDouble.empty(), OptionalInt.empty(),
                OptionalInt.empty(), List.of());
    }

    /** Reads the generation_config.json of a model folder; a folder without one gets {@link #none()}. */
    public static GenerationConfig loadFrom(Path modelFolder) {
        Path file = modelFolder.resolve(FILE);
        return Files.exists(file) ? read(Json.read(file), file.toString()) : none();
    }

    /** Reads parsed generation_config.json content; {@code source} names it in error messages. */
    public static GenerationConfig read(JsonNode json, String source) {
        if (!(json instanceof ObjectNode object)) {
            throw new BadInputException(source + ": expected a JSON object of generation settings");
        }
        var c = new ConfigFields(object, source);
        Optional<Boolean> doSample = c.hasValue("do_sample") ? Optional.of(c.boolOr("do_sample", false))
                : Optional.empty();
        OptionalDouble temperature = c.optionalDouble("temperature", OptionalDouble.empty());
        if (temperature.isPresent() && !(temperature.getAsDouble() >= 0)) {
            throw c.error("temperature", "must not be negative, got " + temperature.getAsDouble());
        }
        OptionalInt topK = c.hasValue("top_k") ? OptionalInt.of(c.nonNegativeIntOr("top_k", 0)) : OptionalInt.empty();
        OptionalDouble topP = probability(c, "top_p");
        OptionalDouble minP = probability(c, "min_p");
        OptionalDouble penalty = c.optionalDouble("repetition_penalty", OptionalDouble.empty());
        if (penalty.isPresent() && !(penalty.getAsDouble() > 0)) {
            throw c.error("repetition_penalty", "must be positive, got " + penalty.getAsDouble());
        }
        OptionalInt maxNew = c.hasValue("max_new_tokens") ? OptionalInt.of(c.positiveIntOr("max_new_tokens", 1))
                : OptionalInt.empty();
        OptionalInt maxLength = c.hasValue("max_length") ? OptionalInt.of(c.positiveIntOr("max_length", 1))
                : OptionalInt.empty();
        return new GenerationConfig(doSample, temperature, topK, topP, minP, penalty, maxNew, maxLength, eos(c));
    }

    private static OptionalDouble probability(ConfigFields c, String field) {
        OptionalDouble p = c.optionalDouble(field, OptionalDouble.empty());
        if (p.isPresent() && !(p.getAsDouble() >= 0 && p.getAsDouble() <= 1)) {
            throw c.error(field, "must be between 0 and 1, got " + p.getAsDouble());
        }
        return p;
    }

    /** eos_token_id as transformers accepts it: absent or null (none), one id, or a list of ids. */
    private static List<Integer> eos(ConfigFields c) {
        if (!c.hasValue("eos_token_id")) {
            return List.of();
        }
        if (c.json().get("eos_token_id").isArray()) {
            return c.intListOr("eos_token_id", List.of());
        }
        OptionalInt one = c.optionalInt("eos_token_id", OptionalInt.empty());
        return one.isPresent() ? List.of(one.getAsInt()) : List.of();
    }
}
