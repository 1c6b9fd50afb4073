package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.tokenizer.BpeTrainer;
import dev.moe4j.io.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * A run's tokens: the tokenizer (given, the fine-tuned model's, or a byte-level BPE trained on the training text and
 * cached), and the packed training and validation streams (tokenised once and cached), or pre-tokenised JSONL.
 *
 * @param tokenizer     null for pre-tokenised data without a tokenizer (samples cannot be printed then)
 * @param tokenizerJson the tokenizer.json a checkpoint copies, or null
 * @param vocabSize     the ids the model must embed
 */
public record TrainingData(Tokenizer tokenizer, Path tokenizerJson, int vocabSize, TokenStream train,
                           TokenStream validation, String description) {
    /** The special token a trained tokenizer gets (id 0), also put between documents. */
    public static final String END_OF_TEXT = "<|endoftext|>";

    /**
     * Prepares the data of {@code paths}: text files and folders, or one {@code .jsonl} of token ids.
     *
     * @param tokenizerFile a tokenizer.json to use, if any (--tokenizer, or the fine-tuned model's)
     * @param vocab         the vocabulary of a BPE trained here, or the id bound of JSONL without a tokenizer
     * @param log           hears what is being done (training a tokenizer takes seconds)
     */
    public static TrainingData prepare(List<Path> paths, double validFraction, Optional<Path> tokenizerFile, int vocab,
                                       TokenCache cache, Consumer<String> log) {
        boolean jsonl = paths.stream().anyMatch(p -> p.toString().toLowerCase(Locale.ROOT).endsWith(".jsonl"));
        if (jsonl) {
            if (paths.size() != 1) {
                throw new BadInputException("--data: pre-tokenised data is one .jsonl file, not mixed with others: " + paths);
            }
            Tokenizer tokenizer = tokenizerFile.map(Tokenizer::load).orElse(null);
            int bound = tokenizer != null ? tokenizer.vocabSize() : vocab;
            TokenStream[] parts = JsonlTokens.split(JsonlTokens.read(paths.getFirst(), bound), validFraction);
            return new TrainingData(tokenizer, tokenizerFile.orElse(null), bound, parts[0], parts[1],
                    paths.getFirst() + " (pre-tokenised)");
        }
        TextCorpus corpus = TextCorpus.load(paths, validFraction);
        Path tokenizerJson = tokenizerFile.orElseGet(() -> trainedTokenizer(corpus, vocab, cache, log));
        Tokenizer tokenizer = Tokenizer.load(tokenizerJson);
        byte[] identity = readBytes(tokenizerJson);
        int separator = separator(tokenizer);
        log.accept("tokenising " + corpus.trainCharacters() / 1000 + "k characters (cached in " + cache.folder() + ")");
        TokenStream train = cache.tokenize(tokenizer, identity, corpus.train(), separator);
        TokenStream valid = cache.tokenize(tokenizer, identity, corpus.validation(), separator);
        String names = String.join(", ", corpus.train().stream().map(TextCorpus.Document::name).toList());
        return new TrainingData(tokenizer, tokenizerJson, tokenizer.vocabSize(), train, valid, names);
    }

    /** The id put between documents: the tokenizer's end-of-text or end-of-sequence token, if it has one. */
    public static int separator(Tokenizer tokenizer) {
        for (String name : List.of(END_OF_TEXT, "</s>", "<|end_of_text|>", "<eos>")) {
            var id = tokenizer.tokenId(name);
            if (id.isPresent()) {
                return id.getAsInt();
            }
        }
        return -1;
    }

    /** A byte-level BPE of {@code vocab} tokens learned from the training text, cached by text and size. */
    private static Path trainedTokenizer(TextCorpus corpus, int vocab, TokenCache cache, Consumer<String> log) {
        if (vocab < 257) {
            throw new BadInputException("--vocab " + vocab + ": a byte-level BPE needs at least 257 tokens (the 256 "
                    + "bytes and " + END_OF_TEXT + ")");
        }
        String key;
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(("bpe-v1 " + vocab).getBytes(StandardCharsets.UTF_8));
            for (var d : corpus.train()) {
                sha.update((byte) 0);
                sha.update(d.text().getBytes(StandardCharsets.UTF_8));
            }
            key = HexFormat.of().formatHex(sha.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        Path file = cache.folder().resolve("tokenizers").resolve("bpe-" + vocab + "-" + key + ".json");
        if (Files.isRegularFile(file)) {
            try {
                Tokenizer.load(file);
                return file;
            } catch (BadInputException damaged) {
                // a damaged cache entry is trained again below
            }
        }
        log.accept("training a byte-level BPE of " + vocab + " tokens on the training text");
        var result = new BpeTrainer(vocab, List.of(END_OF_TEXT), 2)
                .train(corpus.train().stream().flatMap(d -> d.text().lines().map(l -> l + "\n")).toList());
        result.write(file);
        return file;
    }

    private static byte[] readBytes(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + e.getMessage() + ")");
        }
    }
}
