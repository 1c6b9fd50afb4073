package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * Learns a GPT-2-style byte-level BPE vocabulary from text, the way the Hugging Face BpeTrainer does: words are
 * the GPT-2 split of each line mapped to byte characters, the alphabet is all 256 bytes, and each step merges the
 * most frequent adjacent pair (ties go to the pair with the smaller ids) until the vocabulary has the target size.
 * Pair counts are updated incrementally, only in the words a merge touches. Deterministic. The result is a
 * tokenizer.json that moe4j's {@link Tokenizer} and Python's tokenizers both load.
 */
public final class BpeTrainer {
    private final int vocabSize;
    private final List<String> specialTokens;
    private final long minFrequency;

    /**
     * @param vocabSize     the size of the vocabulary to reach, special tokens and the 256 bytes included
     * @param specialTokens tokens such as {@code <|endoftext|>}, given ids 0, 1, ... and never split
     * @param minFrequency  pairs seen fewer times than this are never merged
     */
    public BpeTrainer(int vocabSize, List<String> specialTokens, long minFrequency) {
        if (vocabSize < 256 + specialTokens.size()) {
            throw new IllegalArgumentException("vocabSize " + vocabSize + " is smaller than the 256 bytes plus "
                    + specialTokens.size() + " special tokens");
        }
        this.vocabSize = vocabSize;
        this.specialTokens = List.copyOf(specialTokens);
        this.minFrequency = Math.max(1, minFrequency);
    }

    /** What training produced: the vocabulary (token to id) and the merges in rank order. */
    public record Result(Map<String, Integer> vocab, List<String[]> merges, List<String> specialTokens) {
        /** Writes the result as a tokenizer.json (atomically: a failed write leaves no partial file). */
        public void write(Path tokenizerJson) {
            var f = JsonNodeFactory.instance;
            ObjectNode root = f.objectNode();
            root.put("version", "1.0");
            root.putNull("truncation");
            root.putNull("padding");
            ArrayNode added = root.putArray("added_tokens");
            for (String s : specialTokens) {
                added.addObject().put("id", vocab.get(s)).put("content", s).put("single_word", false).put("lstrip", false)
                        .put("rstrip", false).put("normalized", false).put("special", true);
            }
            root.putNull("normalizer");
            root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false)
                    .put("trim_offsets", true).put("use_regex", true);
            root.putObject("post_processor").put("type", "ByteLevel").put("add_prefix_space", false)
                    .put("trim_offsets", false).put("use_regex", true);
            root.putObject("decoder").put("type", "ByteLevel").put("add_prefix_space", false)
                    .put("trim_offsets", true).put("use_regex", true);
            ObjectNode model = root.putObject("model");
            model.put("type", "BPE").putNull("dropout").putNull("unk_token").putNull("continuing_subword_prefix")
                    .putNull("end_of_word_suffix").put("fuse_unk", false).put("byte_fallback", false).put("ignore_merges", false);
            ObjectNode v = model.putObject("vocab");
            vocab.entrySet().stream().sorted(Map.Entry.comparingByValue()).forEach(e -> v.put(e.getKey(), e.getValue()));
            ArrayNode m = model.putArray("merges");
            for (String[] pair : merges) m.addArray().add(pair[0]).add(pair[1]);
            String json;
            try {
                json = new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(root);
            } catch (IOException e) {
                throw new IllegalStateException("cannot serialise a tokenizer", e);
            }
            AtomicFiles.writeString(tokenizerJson, json);
        }
    }

    /** Trains on text files, read as UTF-8 line by line (line ends kept, as the reference does). */
    public Result trainOnFiles(List<Path> files) {
        var counter = new WordCounter();
        for (Path file : files) {
            try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
                var line = new StringBuilder();
                int c;
                while ((c = reader.read()) >= 0) {
                    line.append((char) c);
                    if (c == '\n') {
                        counter.add(line.toString());
                        line.setLength(0);
                    }
                }
                if (!line.isEmpty()) counter.add(line.toString());
            } catch (NoSuchFileException e) {
                throw new BadInputException(file + ": no such file (expected training text)");
            } catch (IOException e) {
                throw new BadInputException(file + ": cannot read as UTF-8 text (" + e.getMessage() + ")");
            }
        }
        return train(counter.counts);
    }

    /** Trains on in-memory texts (each treated like one line of a file). */
    public Result train(Iterable<String> texts) {
        var counter = new WordCounter();
        texts.forEach(counter::add);
        return train(counter.counts);
    }

    /**
     * Counts the byte-level words of text, as the pre-tokenizer of the trained tokenizer will cut it. Special
     * tokens in the text are counted as ordinary text: the reference trainer does the same (its tokenizer learns
     * about them only after training), and matching it keeps the merges identical.
     */
    private static final class WordCounter {
        final Map<String, long[]> counts = new HashMap<>();
        private final PreTokenizer pre = new PreTokenizer.ByteLevelSplit(false, true);

        void add(String text) {
            for (var piece : pre.apply(List.of(new PreTokenizer.Piece(text, true)))) {
                counts.computeIfAbsent(piece.text(), k -> new long[1])[0]++;
            }
        }
    }

    private Result train(Map<String, long[]> wordCounts) {
        // vocabulary: special tokens, then the 256 byte characters in code point order, then merges
        var vocab = new LinkedHashMap<String, Integer>();
        var tokens = new ArrayList<String>();
        for (String s : specialTokens) {
            if (vocab.putIfAbsent(s, tokens.size()) == null) tokens.add(s);
        }
        char[] alphabet = new char[256];
        for (int b = 0; b < 256; b++) alphabet[b] = ByteLevel.charOf(b);
        Arrays.sort(alphabet);
        int[] charId = new int[0x200];
        for (char c : alphabet) {
            String s = String.valueOf(c);
            Integer existing = vocab.get(s);
            if (existing == null) {
                existing = tokens.size();
                vocab.put(s, existing);
                tokens.add(s);
            }
            charId[c] = existing;
        }

        // words as id arrays, in a fixed order so that nothing depends on hash iteration
        var sortedWords = new ArrayList<>(wordCounts.keySet());
        sortedWords.sort(null);
        int n = sortedWords.size();
        int[][] words = new int[n][];
        long[] counts = new long[n];
        for (int w = 0; w < n; w++) {
            String word = sortedWords.get(w);
            words[w] = new int[word.length()];
            for (int i = 0; i < word.length(); i++) words[w][i] = charId[word.charAt(i)];
            counts[w] = wordCounts.get(word)[0];
        }

        var pairCounts = new HashMap<Long, Long>();
        var where = new HashMap<Long, BpeModel.IntList>();
        for (int w = 0; w < n; w++) {
            int[] word = words[w];
            for (int i = 0; i + 1 < word.length; i++) {
                long p = pair(word[i], word[i + 1]);
                pairCounts.merge(p, counts[w], Long::sum);
                var list = where.computeIfAbsent(p, k -> new BpeModel.IntList(4));
                if (list.size() == 0 || list.get(list.size() - 1) != w) list.add(w);
            }
        }
        // most frequent first; among equals the smaller pair of ids, as the reference orders them
        var queue = new PriorityQueue<long[]>((a, b) -> a[0] != b[0] ? Long.compare(b[0], a[0]) : Long.compare(a[1], b[1]));
        pairCounts.forEach((p, c) -> queue.add(new long[] {c, p}));

        var merges = new ArrayList<String[]>();
        var delta = new HashMap<Long, Long>();
        while (tokens.size() < vocabSize && !queue.isEmpty()) {
            long[] top = queue.poll();
            long p = top[1];
            long current = pairCounts.getOrDefault(p, 0L);
            if (current != top[0]) { // stale: counts changed since it was queued
                if (current > 0) queue.add(new long[] {current, p});
                continue;
            }
            if (current < minFrequency) break;
            int a = (int) (p >>> 32), b = (int) p;
            String merged = tokens.get(a) + tokens.get(b);
            Integer newId = vocab.get(merged);
            if (newId == null) {
                newId = tokens.size();
                vocab.put(merged, newId);
                tokens.add(merged);
            }
            merges.add(new String[] {tokens.get(a), tokens.get(b)});

            delta.clear();
            var affected = where.remove(p);
            for (int k = 0; affected != null && k < affected.size(); k++) {
                int w = affected.get(k);
                int[] old = words[w];
                int[] now = mergeWord(old, a, b, newId);
                if (now == old) continue; // already merged via a duplicate entry
                words[w] = now;
                for (int i = 0; i + 1 < old.length; i++) delta.merge(pair(old[i], old[i + 1]), -counts[w], Long::sum);
                for (int i = 0; i + 1 < now.length; i++) {
                    long q = pair(now[i], now[i + 1]);
                    delta.merge(q, counts[w], Long::sum);
                    if (now[i] == newId || now[i + 1] == newId) {
                        var list = where.computeIfAbsent(q, x -> new BpeModel.IntList(4));
                        if (list.size() == 0 || list.get(list.size() - 1) != w) list.add(w);
                    }
                }
            }
            for (var e : delta.entrySet()) {
                if (e.getValue() == 0) continue;
                long updated = pairCounts.getOrDefault(e.getKey(), 0L) + e.getValue();
                if (updated <= 0) {
                    pairCounts.remove(e.getKey());
                } else {
                    pairCounts.put(e.getKey(), updated);
                    if (e.getValue() > 0) queue.add(new long[] {updated, e.getKey()});
                }
            }
        }
        return new Result(vocab, merges, specialTokens);
    }

    private static long pair(int a, int b) {
        return ((long) a << 32) | (b & 0xFFFFFFFFL);
    }

    /** The word with every non-overlapping (a, b), left to right, replaced by the merged id; the same array if none. */
    private static int[] mergeWord(int[] w, int a, int b, int merged) {
        int[] out = null;
        int n = 0;
        for (int i = 0; i < w.length; i++) {
            if (i + 1 < w.length && w[i] == a && w[i + 1] == b) {
                if (out == null) {
                    out = new int[w.length - 1];
                    System.arraycopy(w, 0, out, 0, i);
                    n = i;
                }
                out[n++] = merged;
                i++;
            } else if (out != null) {
                out[n++] = w[i];
            }
        }
        return out == null ? w : Arrays.copyOf(out, n);
    }
}
