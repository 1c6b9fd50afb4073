package dev.moe4j.io.tokenizer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Byte-level BPE training: vocabulary size, merge order, the written tokenizer.json, determinism. */
class BpeTrainerTest {
    @TempDir
    Path dir;

    /** A corpus with a skewed distribution over a few thousand made-up words, some of them non-Latin, like text. */
    static List<String> corpus(long seed, int lines) {
        String[] syllables = {"ex", "per", "t", "rou", "ter", "to", "ken", "mix", "ture", "spar", "se", "lay", "er",
                "ga", "te", "lo", "ad", "ba", "lan", "ce", "ca", "pa", "ci", "ty", "模", "型", "专", "家", "ï", "42"};
        var random = new Random(seed);
        var lexicon = new ArrayList<String>();
        for (int i = 0; i < 3000; i++) {
            var w = new StringBuilder();
            int n = 1 + random.nextInt(4);
            for (int k = 0; k < n; k++) w.append(syllables[random.nextInt(syllables.length)]);
            lexicon.add(w.toString());
        }
        var out = new ArrayList<String>();
        for (int l = 0; l < lines; l++) {
            var sb = new StringBuilder();
            int n = 3 + random.nextInt(12);
            for (int i = 0; i < n; i++) {
                if (i > 0) sb.append(random.nextInt(10) == 0 ? ", " : " ");
                sb.append(lexicon.get((int) Math.floor(Math.pow(random.nextDouble(), 3) * lexicon.size())));
            }
            out.add(sb.append(".\n").toString());
        }
        return out;
    }

    @Test
    void reachesTheTargetSizeWithSpecialsFirstThenBytesThenMerges() {
        var result = new BpeTrainer(400, List.of("<|endoftext|>", "<|im_start|>"), 2).train(corpus(1, 2000));
        assertEquals(400, result.vocab().size());
        assertEquals(0, result.vocab().get("<|endoftext|>"));
        assertEquals(1, result.vocab().get("<|im_start|>"));
        assertEquals(400 - 2 - 256, result.merges().size());
        // merged tokens are concatenations of two earlier tokens
        for (String[] m : result.merges()) assertTrue(result.vocab().get(m[0] + m[1]) > result.vocab().get(m[0]));
    }

    @Test
    void theFirstMergeIsTheMostFrequentPair() {
        var result = new BpeTrainer(257, List.of(), 1).train(List.of("aaab aaab ab"));
        // pairs: "a a" 4x (2 per "aaab"), "a b" 3x, "Ġ a" 2x: "a a" wins
        assertArrayEquals(new String[] {"a", "a"}, result.merges().getFirst());
    }

    @Test
    void theWrittenTokenizerLoadsAndRoundTripsAnyText() throws IOException {
        Path corpusFile = dir.resolve("corpus.txt");
        Files.writeString(corpusFile, String.join("", corpus(2, 3000)));
        var result = new BpeTrainer(512, List.of("<|endoftext|>"), 2).trainOnFiles(List.of(corpusFile));
        Path json = dir.resolve("tokenizer.json");
        result.write(json);
        var tokenizer = Tokenizer.load(json);
        assertEquals(512, tokenizer.vocabSize());
        for (String s : TokenizerRoundTripTest.randomTexts(5, 200)) {
            assertEquals(s, tokenizer.decode(tokenizer.encodeIds(s, true), false));
        }
        int[] ids = tokenizer.encodeIds("expert tokens<|endoftext|>", false);
        assertEquals(0, ids[ids.length - 1], "special tokens are never split");
    }

    @Test
    void trainingIsDeterministic() throws IOException {
        var a = new BpeTrainer(450, List.of("<s>"), 2).train(corpus(3, 1500));
        var b = new BpeTrainer(450, List.of("<s>"), 2).train(corpus(3, 1500));
        a.write(dir.resolve("a.json"));
        b.write(dir.resolve("b.json"));
        assertEquals(Files.readString(dir.resolve("a.json")), Files.readString(dir.resolve("b.json")));
    }

    /**
     * The Hugging Face BpeTrainer, run on the same corpus with the same settings (byte-level GPT-2 split, 600
     * tokens, min_frequency 2, two specials; scripts/make_trainer_fixtures.py), learns the same vocabulary and the
     * same merges in the same order.
     */
    @Test
    void learnsExactlyTheMergesOfTheReferenceTrainer() throws IOException {
        var result = new BpeTrainer(600, List.of("<|endoftext|>", "<|pad|>"), 2)
                .trainOnFiles(List.of(TokenizerParityTest.resource("trainer/corpus.txt")));
        var reference = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(TokenizerParityTest.resource("trainer/hf_tokenizer.json").toFile()).get("model");
        var referenceVocab = new java.util.HashMap<String, Integer>();
        reference.get("vocab").fields().forEachRemaining(e -> referenceVocab.put(e.getKey(), e.getValue().asInt()));
        assertEquals(referenceVocab, result.vocab());
        var merges = new ArrayList<List<String>>();
        reference.get("merges").forEach(m -> merges.add(List.of(m.get(0).asText(), m.get(1).asText())));
        assertEquals(merges, result.merges().stream().map(List::of).toList());
    }
}
