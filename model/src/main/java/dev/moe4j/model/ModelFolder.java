package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.generate.GenerationConfig;
import dev.moe4j.model.generate.TokenText;
import dev.moe4j.model.gguf.GgufModel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * A model opened for inference: a Hugging Face model folder (config.json, tokenizer.json, generation_config.json and
 * the weights) or one GGUF file (config, vocabulary and chat template in its metadata; {@link GgufModel} tells the
 * two apart). The small files are read and checked against each other before the weights are touched, so a
 * mismatch costs no loading time and names the file at fault. The commands and the server open models this way.
 *
 * @param folder the model folder, or the GGUF file
 */
public record ModelFolder(Path folder, ModelConfig config, Tokenizer tokenizer, GenerationConfig generation,
                          LanguageModel model, long loadNanos) implements AutoCloseable {
    public static final String TOKENIZER = "tokenizer.json";
    public static final String TOKENIZER_CONFIG = "tokenizer_config.json";

    /** Opens the weights of a model folder whose config.json has already been read (tests put stand-ins here). */
    @FunctionalInterface
    public interface Opener {
        /**
         * Loads the checkpoint with {@link ModelLoader}, every tensor checked first: on the CPU copied into memory
         * when it fits, otherwise mapped ({@link WeightMemory#AUTO}); copied to a GPU.
         */
        Opener CHECKPOINT = checkpoint(WeightMemory.AUTO);

        LanguageModel open(Path folder, ModelConfig config, Backend backend);

        /**
         * This opener with a CPU model's weights held as {@code options} say; openers of stand-in models ignore it.
         */
        default Opener with(LoadOptions options) {
            return this;
        }

        /** Loads checkpoints with {@link ModelLoader}, a CPU model's weights where {@code memory} says. */
        static Opener checkpoint(WeightMemory memory) {
            return checkpoint(LoadOptions.of(memory));
        }

        /** Loads checkpoints with {@link ModelLoader}, a CPU model's weights held as {@code options} say. */
        static Opener checkpoint(LoadOptions options) {
            return new Opener() {
                @Override
                public LanguageModel open(Path folder, ModelConfig config, Backend backend) {
                    return ModelLoader.load(folder, backend, options);
                }

                @Override
                public Opener with(LoadOptions other) {
                    return checkpoint(other);
                }
            };
        }
    }

    /** Opens a model folder on the CPU: its small files checked against each other, then the weights. */
    public static ModelFolder open(Path folder, Opener opener) {
        return open(folder, opener, config -> CpuBackend.INSTANCE);
    }

    /**
     * Opens a model folder: its small files checked against each other, then the weights through {@code opener} on
     * the backend {@code backendFor} picks once the config is known (a GPU may refuse what it does not run yet).
     */
    public static ModelFolder open(Path folder, Opener opener, Function<ModelConfig, Backend> backendFor) {
        long start = System.nanoTime();
        if (GgufModel.isGguf(folder)) {
            GgufModel.Description gguf = GgufModel.describe(folder);
            LanguageModel model = opener.open(folder, gguf.config(), backendFor.apply(gguf.config()));
            return new ModelFolder(folder, gguf.config(), gguf.tokenizer(), GenerationConfig.none(), model,
                    System.nanoTime() - start);
        }
        if (!Files.isDirectory(folder)) {
            throw new BadInputException(folder + (Files.exists(folder) ? ": neither a folder nor a GGUF file"
                    : ": no such folder or file") + " (expected a model folder with config.json, tokenizer.json and"
                    + " safetensors weights, or a .gguf file)");
        }
        ModelConfig config = HfFamilies.load(folder.resolve("config.json"));
        Tokenizer tokenizer = Tokenizer.load(folder.resolve(TOKENIZER));
        if (tokenizer.vocabSize() > config.vocabSize()) {
            throw new BadInputException(folder.resolve(TOKENIZER) + ": the tokenizer has ids up to "
                    + (tokenizer.vocabSize() - 1) + " but config.json vocab_size is " + config.vocabSize()
                    + ": the tokenizer does not belong to this model");
        }
        GenerationConfig generation = GenerationConfig.loadFrom(folder);
        LanguageModel model = opener.open(folder, config, backendFor.apply(config));
        return new ModelFolder(folder, config, tokenizer, generation, model, System.nanoTime() - start);
    }

    /** The ids that end a reply: generation_config.json's eos_token_id and config.json's, together. */
    public Set<Integer> eosTokenIds() {
        var ids = new LinkedHashSet<Integer>(generation.eosTokenIds());
        ids.addAll(config.tokens().eos());
        return ids;
    }

    /** The tokenizer as generation's text: replies skip special tokens. */
    public TokenText text() {
        return TokenText.of(tokenizer);
    }

    /**
     * The chat template: {@code templateFile} (Jinja text) when given, otherwise the model's tokenizer_config.json
     * {@code chat_template} (or chat_template.jinja). Special tokens (bos_token, eos_token, ...) come from
     * tokenizer_config.json when there is one. A model without a template throws {@link ChatTemplate.Missing}; a
     * template that does not parse is refused here too, naming its file.
     */
    public static ChatTemplate chatTemplate(Path folder, Path templateFile) {
        if (GgufModel.isGguf(folder)) {
            GgufModel.Description gguf = GgufModel.describe(folder);
            return templateFile == null ? gguf.template(folder)
                    : ChatTemplate.of(templateFile.toString(), readTemplate(templateFile), gguf.specialTokens());
        }
        Path tokenizerConfig = folder.resolve(TOKENIZER_CONFIG);
        if (templateFile == null) {
            if (!Files.isRegularFile(tokenizerConfig)) {
                throw new ChatTemplate.Missing(folder + ": no " + TOKENIZER_CONFIG + ", so no chat template; give"
                        + " one with --template FILE");
            }
            try {
                return ChatTemplate.load(tokenizerConfig);
            } catch (ChatTemplate.Missing e) {
                throw new ChatTemplate.Missing(e.getMessage() + "; this model has no chat template: give one with"
                        + " --template FILE");
            }
        }
        String text = readTemplate(templateFile);
        Map<String, String> specials = new HashMap<>();
        if (Files.isRegularFile(tokenizerConfig)) {
            var json = Json.read(tokenizerConfig);
            for (String key : new String[] {"bos_token", "eos_token", "unk_token", "pad_token"}) {
                var node = json.get(key);
                if (node != null && node.isTextual()) {
                    specials.put(key, node.asText());
                } else if (node != null && node.path("content").isTextual()) {
                    specials.put(key, node.get("content").asText());
                }
            }
        }
        return ChatTemplate.of(templateFile.toString(), text, specials);
    }

    private static String readTemplate(Path templateFile) {
        try {
            return Files.readString(templateFile);
        } catch (IOException e) {
            throw new BadInputException(templateFile + ": cannot read the chat template ("
                    + (Files.exists(templateFile) ? e.getMessage() : "no such file") + ")");
        }
    }

    @Override
    public void close() {
        model.close();
    }
}
