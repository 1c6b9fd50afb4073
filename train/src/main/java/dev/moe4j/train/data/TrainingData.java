package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.tokenizer.BpeTrainer;
import dev.moe4j.io.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * A run's tokens: the tokenizer (given, the fine-tuned model's, or a byte-level BPE trained on the training text and
 * cached), and the packed training and validation streams (tokenised once and cached), or pre-tokenised JSONL, or
 * example data (a JSONL of objects: {@link ExampleData}), whose examples are also laid end to end in the streams.
 *
 * @param tokenizer     null for pre-tokenised data without a tokenizer (samples cannot be printed then)
 * @param tokenizerJson the tokenizer.json a checkpoint copies, or null
 * @param vocabSize     the ids the model must embed
 * @param examples      the examples of example data; null for text and for arrays of token ids
 */
public record TrainingData(Tokenizer tokenizer, Path tokenizerJson, int vocabSize, TokenStream train,
                           TokenStream validation, Examples examples, String description) {
    /** Example data's training and validation examples, each cut to the longest allowed. */
    public record Examples(List<Example> train, List<Example> validation) {
    }

    /**
     * How example data becomes sequences.
     *
     * @param chatTemplate the chat template of {@code messages} lines, for the run's tokenizer (it may throw why
     *                     there is none: only asked for when such a line comes)
     * @param eos          the end-of-sequence id put after a text or a completion, for the run's tokenizer (-1: none)
     * @param maxLength    examples longer than this are cut to it
     */
    public record ExampleOptions(Function<Tokenizer, ChatTemplate> chatTemplate, ToIntFunction<Tokenizer> eos,
                                 int maxLength) {
    }
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
        return prepare(paths, validFraction, tokenizerFile, vocab, cache, log, null);
    }

    /**
     * {@link #prepare(List, double, Optional, int, TokenCache, Consumer)}, where a {@code .jsonl} may also be example
     * data, read with {@code examples} (which may be null when it is known not to be).
     */
    public static TrainingData prepare(List<Path> paths, double validFraction, Optional<Path> tokenizerFile, int vocab,
                                       TokenCache cache, Consumer<String> log, ExampleOptions examples) {
        boolean jsonl = paths.stream().anyMatch(p -> p.toString().toLowerCase(Locale.ROOT).endsWith(".jsonl"));
        if (jsonl) {
            if (paths.size() != 1) {
                throw new BadInputException("--data: a .jsonl is the run's one data file, not mixed with others: " + paths);
            }
            Path file = paths.getFirst();
            Tokenizer tokenizer = tokenizerFile.map(Tokenizer::load).orElse(null);
            int bound = tokenizer != null ? tokenizer.vocabSize() : vocab;
            if (examples != null && ExampleData.isExampleData(file)) {
                return examples(file, validFraction, tokenizer, tokenizerFile.orElse(null), bound, examples, log);
            }
            TokenStream[] parts = JsonlTokens.split(JsonlTokens.read(file, bound), validFraction);
            return new TrainingData(tokenizer, tokenizerFile.orElse(null), bound, parts[0], parts[1], null,
                    file + " (pre-tokenised)");
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
        return new TrainingData(tokenizer, tokenizerJson, tokenizer.vocabSize(), train, valid, null, names);
    }

    private static TrainingData examples(Path file, double validFraction, Tokenizer tokenizer, Path tokenizerJson,
                                         int bound, ExampleOptions options, Consumer<String> log) {
        var sources = new ExampleData.Sources(tokenizer, () -> options.chatTemplate().apply(tokenizer),
                tokenizer == null ? -1 : options.eos().applyAsInt(tokenizer), bound);
        List<Example> read = ExampleData.read(file, sources);
        var kept = new ArrayList<Example>();
        int cut = 0, emptied = 0;
        for (Example e : read) {
            Example c = e.truncated(options.maxLength());
            if (c != e) {
                cut++;
            }
            if (c.lossTokens() == 0) {
                emptied++;
            } else {
                kept.add(c);
            }
        }
        if (cut > 0) {
            log.accept(cut + " of " + read.size() + " examples are longer than " + options.maxLength() + " tokens "
                    + "(--max-length) and were cut to it" + (emptied == 0 ? "" : "; " + emptied + " of them kept no "
                    + "labelled token and are left out"));
        }
        if (kept.isEmpty()) {
            throw new BadInputException(file + ": no example keeps a labelled token within --max-length "
                    + options.maxLength());
        }
        List<List<Example>> parts = ExampleData.split(kept, validFraction);
        var examples = new Examples(parts.get(0), parts.get(1));
        return new TrainingData(tokenizer, tokenizerJson, bound, ExampleBatches.pack(examples.train()),
                ExampleBatches.pack(examples.validation()), examples, file + " (" + kept.size() + " examples)");
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
