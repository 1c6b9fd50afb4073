package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Pre-tokenised data: a JSONL file with one JSON array of token ids per line, packed in file order (each line a
 * document named {@code <file>:<line>}).
 */
public final class JsonlTokens {
    private JsonlTokens() {
    }

    public static TokenStream read(Path file, int vocabSize) {
        var tokens = new ArrayList<int[]>();
        var names = new ArrayList<String>();
        int total = 0;
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            int number = 0;
            while ((line = reader.readLine()) != null) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                int[] ids = parseLine(file, number, line, vocabSize);
                tokens.add(ids);
                names.add(file.getFileName() + ":" + number);
                total = Math.addExact(total, ids.length);
            }
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + e.getMessage() + ")");
        }
        int[] all = new int[total];
        int[] starts = new int[tokens.size()];
        int at = 0;
        for (int d = 0; d < tokens.size(); d++) {
            starts[d] = at;
            System.arraycopy(tokens.get(d), 0, all, at, tokens.get(d).length);
            at += tokens.get(d).length;
        }
        return new TokenStream(all, starts, names);
    }

    /** Parses "[1, 2, 3]" without building a JSON tree: pre-tokenised files can be large. */
    static int[] parseLine(Path file, int number, String line, int vocabSize) {
        String s = line.strip();
        if (!s.startsWith("[") || !s.endsWith("]")) {
            throw new BadInputException(file + ": line " + number + " is not a JSON array of token ids");
        }
        String body = s.substring(1, s.length() - 1).strip();
        if (body.isEmpty()) {
            return new int[0];
        }
        String[] parts = body.split(",");
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].strip());
            } catch (NumberFormatException e) {
                throw new BadInputException(file + ": line " + number + ": " + BadInputException.quote(parts[i].strip())
                        + " is not a token id");
            }
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new BadInputException(file + ": line " + number + ": token id " + ids[i] + " outside the vocabulary [0, " + vocabSize + ")");
            }
        }
        return ids;
    }

    /** Splits off the last {@code fraction} of documents (at least one when there are two) for validation. */
    public static TokenStream[] split(TokenStream stream, double fraction) {
        int docs = stream.documentStarts().length;
        int valid = docs < 2 || fraction <= 0 ? 0 : Math.max(1, (int) Math.round(docs * fraction));
        int cutDoc = docs - valid;
        int cut = cutDoc == docs ? stream.length() : stream.documentStarts()[cutDoc];
        var trainNames = new ArrayList<>(stream.documentNames().subList(0, cutDoc));
        var validNames = new ArrayList<>(stream.documentNames().subList(cutDoc, docs));
        int[] trainStarts = java.util.Arrays.copyOfRange(stream.documentStarts(), 0, cutDoc);
        int[] validStarts = java.util.Arrays.stream(stream.documentStarts(), cutDoc, docs).map(s -> s - cut).toArray();
        return new TokenStream[] {
                new TokenStream(java.util.Arrays.copyOfRange(stream.tokens(), 0, cut), trainStarts, trainNames),
                new TokenStream(java.util.Arrays.copyOfRange(stream.tokens(), cut, stream.length()), validStarts, validNames)};
    }
}
