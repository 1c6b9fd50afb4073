package dev.moe4j.train.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.lora.LoraSettings;
import dev.moe4j.model.lora.PeftAdapter;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.data.TrainingData;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run saved as one folder that is at once a Hugging Face model folder (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json with a chat template, generation_config.json: what {@code moe4j generate},
 * {@code chat}, {@code serve} and transformers load), or for LoRA fine-tuning a PEFT adapter folder
 * (adapter_config.json, adapter_model.safetensors: what {@code --adapter} and {@code peft.PeftModel} load), and
 * everything an exact
 * resume needs: the run's options ({@value #TRAIN_CONFIG}), its progress ({@value #STATE}), AdamW's moments (and the
 * F32 master weights when the model is saved in BF16) in {@value #OPTIMIZER}, and the metrics so far. The folder is
 * replaced as a whole ({@link AtomicDirectory}): a crash mid-save leaves the previous checkpoint intact.
 */
public final class RunCheckpoint {
    public static final String TRAIN_CONFIG = "train_config.json";
    public static final String STATE = "trainer_state.json";
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String METRICS = "metrics.jsonl";
    public static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    /** Families a trained model is offered to, in order, before moe4j's own format. */
    public static final List<String> AUTO_FAMILIES = List.of("mixtral", "qwen2_moe", "qwen3_moe", "olmoe");

    private RunCheckpoint() {
    }

    /**
     * Where a run stands.
     *
     * @param step       optimiser steps done
     * @param totalSteps the schedule's length (fixed after the first steps of a time-budgeted run)
     * @param family     the checkpoint format chosen at the first save
     * @param validLoss  the last validation loss (NaN before the first evaluation)
     */
    public record State(long step, long tokens, double elapsedSeconds, int totalSteps, String family,
                        double validLoss) {
        ObjectNode toJson() {
            ObjectNode o = Json.mapper().createObjectNode();
            o.put("step", step).put("tokens", tokens).put("elapsed_s", elapsedSeconds).put("total_steps", totalSteps)
                    .put("family", family);
            if (Double.isFinite(validLoss)) {
                o.put("val_loss", validLoss);
            }
            return o;
        }

        static State fromJson(JsonNode o, Path file) {
            if (!o.has("step") || !o.has("family") || !o.has("total_steps")) {
                throw new BadInputException(file + ": not a moe4j trainer state (expected step, total_steps, family)");
            }
            return new State(o.get("step").asLong(), o.path("tokens").asLong(), o.path("elapsed_s").asDouble(),
                    o.get("total_steps").asInt(), o.get("family").asText(),
                    o.has("val_loss") ? o.get("val_loss").asDouble() : Double.NaN);
        }
    }

    /**
     * The config to save a model under in {@code family}: its own, without what only training uses when the family
     * has no field for it (fixed Gaussian noise, balance losses other than transformers' load-balancing loss).
     */
    public static ModelConfig savedConfig(ModelConfig config, String family) {
        var b = config.toBuilder().family(family);
        if (!family.equals(ModelConfig.CUSTOM_FAMILY) && config.moe().isPresent()) {
            MoeConfig m = config.moe().get();
            var transformersLoss = new SwitchLoss(SwitchLoss.Form.TRANSFORMERS);
            b.moe(m.toBuilder().losses(m.losses().stream().filter(t -> t.loss().equals(transformersLoss)).toList())
                    .noise(m.noise().kind() == Noise.Kind.GAUSSIAN ? Noise.none() : m.noise()).build());
        }
        return b.build();
    }

    /**
     * The format to save in: {@code requested}, or for "auto" the first of {@link #AUTO_FAMILIES} whose config.json
     * can express the model, else moe4j's own.
     */
    public static String chooseFamily(ModelConfig config, String requested) {
        if (!requested.equals("auto")) {
            HfFamilies.toJson(savedConfig(config, requested), requested); // refuses with the reason
            return requested;
        }
        for (String family : AUTO_FAMILIES) {
            try {
                HfFamilies.toJson(savedConfig(config, family), family);
                return family;
            } catch (BadInputException cannot) {
                // try the next family
            }
        }
        return ModelConfig.CUSTOM_FAMILY;
    }

    /**
     * The chat template of a model trained here, for {@code moe4j chat} and {@code moe4j serve}: each message is its
     * role (capitalised) and a colon on one line, then its content, ended by the end-of-text token that ends a
     * reply (generation_config.json's eos_token_id) and a blank line, like a speaker's lines in the bundled
     * Shakespeare; the generation prompt opens the assistant's turn. Only plain text and the tokenizer's own
     * end-of-text token, so any tokenizer trained here renders it.
     */
    public static final String CHAT_TEMPLATE = "{% for message in messages %}{{ message['role'] | capitalize }}:\n"
            + "{{ message['content'] }}{{ eos_token }}\n\n{% endfor %}{% if add_generation_prompt %}Assistant:\n{% endif %}";

    /**
     * The tokenizer_config.json of a trained model: {@link #CHAT_TEMPLATE} with the tokenizer's end-of-text token
     * as eos_token, or null when the tokenizer has none to end a turn with.
     */
    static ObjectNode tokenizerConfig(Tokenizer tokenizer) {
        int eos = TrainingData.separator(tokenizer);
        if (eos < 0) {
            return null;
        }
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("tokenizer_class", "PreTrainedTokenizerFast");
        o.put("eos_token", tokenizer.tokenString(eos).orElseThrow());
        o.put("clean_up_tokenization_spaces", false);
        o.put("chat_template", CHAT_TEMPLATE);
        return o;
    }

    /**
     * What a save writes beside the model.
     *
     * @param chatTemplate a chat template (--chat-template) that replaces the one tokenizer_config.json would have,
     *                     or null
     * @param lora         the adapters' settings when the run trains LoRA adapters (saved in PEFT's format instead of
     *                     the model), else null
     */
    public record Extras(Path tokenizerJson, Path initFolder, Map<String, String> settings, ObjectNode generation,
                         String chatTemplate, LoraSettings lora) {
        /** What a run that trains the whole model with the checkpoint's own template saves beside it. */
        public Extras(Path tokenizerJson, Path initFolder, Map<String, String> settings, ObjectNode generation) {
            this(tokenizerJson, initFolder, settings, generation, null, null);
        }
    }

    /** Saves the run into {@code out}, replacing the previous checkpoint there as a whole. */
    public static void save(Path out, Trainer trainer, DType dtype, Extras extras, State state) {
        ModelConfig saved = savedConfig(trainer.model().config(), state.family());
        Path metrics = out.resolve(METRICS);
        AtomicDirectory.replace(out, tmp -> {
            if (extras.lora() != null) {
                // The adapters alone, as PEFT saves them: the base stays where --init points.
                PeftAdapter.write(tmp, trainer.model(), extras.lora(), extras.initFolder().toString(), dtype);
            } else {
                ModelSaver.save(trainer.model(), saved, tmp, dtype, ModelSaver.DEFAULT_SHARD_BYTES);
            }
            if (extras.tokenizerJson() != null) {
                Files.copy(extras.tokenizerJson(), tmp.resolve("tokenizer.json"), StandardCopyOption.REPLACE_EXISTING);
            }
            if (extras.initFolder() != null) {
                for (String name : List.of(TOKENIZER_CONFIG, "special_tokens_map.json", "chat_template.jinja")) {
                    Path f = extras.initFolder().resolve(name);
                    // a template given for the run replaces the checkpoint's, which chat_template.jinja would hold
                    if (Files.isRegularFile(f) && !(extras.chatTemplate() != null && name.equals("chat_template.jinja"))) {
                        Files.copy(f, tmp.resolve(name));
                    }
                }
            }
            if (extras.tokenizerJson() != null && !Files.exists(tmp.resolve(TOKENIZER_CONFIG))) {
                ObjectNode config = tokenizerConfig(Tokenizer.load(extras.tokenizerJson()));
                if (config != null) {
                    AtomicFiles.writeString(tmp.resolve(TOKENIZER_CONFIG), Json.pretty(config) + "\n");
                }
            }
            if (extras.chatTemplate() != null) {
                Path file = tmp.resolve(TOKENIZER_CONFIG);
                ObjectNode config = Files.isRegularFile(file) && Json.read(file) instanceof ObjectNode o ? o
                        : Json.mapper().createObjectNode();
                config.put("chat_template", extras.chatTemplate());
                AtomicFiles.writeString(file, Json.pretty(config) + "\n");
            }
            AtomicFiles.writeString(tmp.resolve("generation_config.json"), Json.pretty(extras.generation()) + "\n");
            ObjectNode settings = Json.mapper().createObjectNode();
            extras.settings().forEach(settings::put);
            AtomicFiles.writeString(tmp.resolve(TRAIN_CONFIG), Json.pretty(settings) + "\n");
            AtomicFiles.writeString(tmp.resolve(STATE), Json.pretty(state.toJson()) + "\n");
            var tensors = new LinkedHashMap<String, Tensor>(trainer.state());
            if (dtype != DType.F32) {
                trainer.parameters().forEach((name, p) -> tensors.put("master." + name, p.value()));
            }
            SafetensorsWriter.write(tmp.resolve(OPTIMIZER), tensors, Map.of("format", "moe4j-adamw"));
            if (Files.isRegularFile(metrics)) {
                Files.copy(metrics, tmp.resolve(METRICS));
            }
        });
    }

    /** True when {@code out} holds a saved run. */
    public static boolean exists(Path out) {
        try {
            AtomicDirectory.recover(out);
        } catch (IOException e) {
            throw new BadInputException(out + ": cannot recover the previous checkpoint (" + e.getMessage() + ")");
        }
        return Files.isRegularFile(out.resolve(STATE)) && Files.isRegularFile(out.resolve(TRAIN_CONFIG));
    }

    /** The saved options of a run. */
    public static Map<String, String> settings(Path out) {
        Path file = out.resolve(TRAIN_CONFIG);
        JsonNode json = Json.read(file);
        if (!json.isObject()) {
            throw new BadInputException(file + ": expected an object of option: value pairs");
        }
        var values = new LinkedHashMap<String, String>();
        json.properties().forEach(e -> values.put(e.getKey(), e.getValue().asText()));
        return values;
    }

    public static State state(Path out) {
        Path file = out.resolve(STATE);
        return State.fromJson(Json.read(file), file);
    }

    /** Puts the saved optimiser moments, step count and (for a reduced-precision save) master weights back. */
    public static void restore(Path out, Trainer trainer, State state) {
        Path file = out.resolve(OPTIMIZER);
        if (!Files.isRegularFile(file)) {
            throw new BadInputException(out + ": no " + OPTIMIZER + " to resume from");
        }
        var tensors = new HashMap<String, Tensor>();
        try (var reader = SafetensorsReader.open(file)) {
            for (String name : reader.names()) {
                tensors.put(name, reader.tensor(name).copy());
            }
        }
        try {
            trainer.restore(tensors, state.step());
        } catch (IllegalArgumentException e) {
            throw new BadInputException(file + ": " + e.getMessage());
        }
        for (Map.Entry<String, Parameter> e : trainer.parameters().entrySet()) {
            Tensor master = tensors.get("master." + e.getKey());
            if (master != null) {
                e.getValue().value().copyFrom(master);
            }
        }
    }
}
