package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.gguf.GgufFields;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.StoredWeights;
import dev.moe4j.model.config.ModelConfig;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * A model in one GGUF file, as moe4j runs it: the config from the hyperparameters ({@link GgufModelConfig}), the
 * weights under llama.cpp's tensor names ({@link GgufWeights}, read by {@code ModelLoader} as it reads a folder's
 * safetensors), the tokenizer from {@code tokenizer.ggml.*} and the chat template from
 * {@code tokenizer.chat_template}. {@link #isGguf} is the one place that tells a GGUF file from a model folder.
 */
public final class GgufModel {
    private static final byte[] MAGIC = {'G', 'G', 'U', 'F'};

    private GgufModel() {
    }

    /** What a GGUF file says besides its weights. */
    public record Description(ModelConfig config, Tokenizer tokenizer, Optional<String> chatTemplate,
                              Map<String, String> specialTokens) {
        /** The file's chat template, its special tokens (bos_token, eos_token, ...) those of the vocabulary. */
        public ChatTemplate template(Path file) {
            return ChatTemplate.of(file + " (tokenizer.chat_template)", chatTemplate.orElseThrow(() ->
                    new ChatTemplate.Missing(file + ": no tokenizer.chat_template in this GGUF file; give a chat"
                            + " template with --template FILE")), specialTokens);
        }
    }

    /**
     * Whether {@code path} is a GGUF file rather than a model folder: a regular file named *.gguf or starting with
     * GGUF's magic. Any other file is refused by {@link #config}'s reader with what it starts with.
     */
    public static boolean isGguf(Path path) {
        if (!Files.isRegularFile(path)) {
            return false;
        }
        if (path.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".gguf")) {
            return true;
        }
        try (InputStream in = Files.newInputStream(path)) {
            return Arrays.equals(in.readNBytes(MAGIC.length), MAGIC);
        } catch (IOException e) {
            return false;
        }
    }

    /** The config of a GGUF file's model. */
    public static ModelConfig config(Path file) {
        try (GgufReader reader = GgufReader.open(file)) {
            return GgufModelConfig.read(reader);
        }
    }

    /** The config, tokenizer, chat template and special tokens of a GGUF file, checked against each other. */
    public static Description describe(Path file) {
        try (GgufReader reader = GgufReader.open(file)) {
            ModelConfig config = GgufModelConfig.read(reader);
            var fields = new GgufFields(file, reader.metadata());
            Tokenizer tokenizer = Tokenizer.fromGguf(fields);
            if (tokenizer.vocabSize() > config.vocabSize()) {
                throw new BadInputException(file + ": the vocabulary (tokenizer.ggml.tokens) has ids up to "
                        + (tokenizer.vocabSize() - 1) + " but the model's vocab_size is " + config.vocabSize());
            }
            Map<String, String> specials = new HashMap<>();
            for (String[] key : new String[][] {{"bos_token", "bos_token_id"}, {"eos_token", "eos_token_id"},
                    {"unk_token", "unknown_token_id"}, {"pad_token", "padding_token_id"}}) {
                fields.integer("tokenizer.ggml." + key[1], 0).stream()
                        .mapToObj(id -> tokenizer.tokenString((int) id)).flatMap(Optional::stream)
                        .forEach(token -> specials.put(key[0], token));
            }
            return new Description(config, tokenizer, fields.string("tokenizer.chat_template"), Map.copyOf(specials));
        }
    }

    /** The weights of a GGUF file for a model of {@code config} (its own), mapped; closing unmaps them. */
    public static StoredWeights weights(Path file, ModelConfig config) {
        GgufReader reader = GgufReader.open(file);
        return new GgufWeights(reader, config.moe().map(m -> m.experts()).orElse(0));
    }
}
