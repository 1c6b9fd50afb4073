package dev.moe4j.io.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Behaviours of single components that the fixtures do not reach, with the expectations of the reference
 * library's own unit tests (huggingface/tokenizers: models/bpe, added_vocabulary, decoders).
 */
class TokenizerComponentsTest {
    private static Map<String, Integer> vocab(String... tokens) {
        var v = new HashMap<String, Integer>();
        for (int i = 0; i < tokens.length; i++) v.put(tokens[i], i);
        return v;
    }

    private static List<String[]> merges(String... pairs) {
        return java.util.Arrays.stream(pairs).map(p -> p.split(" ")).toList();
    }

    @Test
    void unknownCharactersBecomeOneUnkEachOrOneFusedUnk() {
        var v = vocab("<unk>", "a", "b");
        var plain = new BpeModel(v, List.of(), "<unk>", null, null, false, false, false);
        var fused = new BpeModel(v, List.of(), "<unk>", null, null, true, false, false);
        assertArrayEquals(new int[] {1, 0, 0, 2}, plain.encode("accb"));
        assertArrayEquals(new int[] {1, 0, 2}, fused.encode("accb"));
        assertArrayEquals(new int[] {0}, fused.encode("cc"));
    }

    @Test
    void byteFallbackUsesByteTokensAndElseTheUnkToken() {
        var bpe = new BpeModel(vocab("<unk>", "<0x61>"), List.of(), "<unk>", null, null, false, true, false);
        assertArrayEquals(new int[] {1}, bpe.encode("a"));
        assertArrayEquals(new int[] {0}, bpe.encode("c"));
    }

    @Test
    void mergesApplyInRankOrderAndHonourTheContinuingSubwordPrefix() {
        var bpe = new BpeModel(vocab("a", "##b", "##c", "ab", "abc"), merges("a ##b", "ab ##c"), "[UNK]",
                "##", null, false, false, false);
        assertArrayEquals(new int[] {3}, bpe.encode("ab"));
        assertArrayEquals(new int[] {4}, bpe.encode("abc"));
        var unrelated = new BpeModel(vocab("u", "n", "r", "e", "l", "a", "t", "d", "re", "at", "ed", "un", "ated", "rel",
                "related", "unrelated"), merges("r e", "a t", "e d", "u n", "at ed", "re l", "rel ated", "un related"),
                null, null, null, false, false, false);
        assertArrayEquals(new int[] {15}, unrelated.encode("unrelated"));
    }

    @Test
    void ignoreMergesTakesWholeWordsFromTheVocabulary() {
        var v = vocab(".:.:", "Ġbelirtilen", ".", ":", "bel", "irtilen", "Ġ", ".:", "belirtilen", ".:.", "be", "l", "ir",
                "ti", "en", "irtil", "irti", "i", "r", "t", "b", "e", "n");
        var m = merges(". :", "b e", "be l", "i r", "t i", "ir ti", "e n", "irti l");
        assertArrayEquals(new int[] {0}, new BpeModel(v, m, null, null, null, false, false, true).encode(".:.:"));
        assertArrayEquals(new int[] {1}, new BpeModel(v, m, null, null, null, false, false, true).encode("Ġbelirtilen"));
        var merging = new BpeModel(v, m, null, null, null, false, false, false);
        assertArrayEquals(new int[] {7, 7}, merging.encode(".:.:"));
        assertArrayEquals(new int[] {6, 4, 15, 14}, merging.encode("Ġbelirtilen"));
    }

    private static AddedVocabulary.AddedToken token(int id, String content, boolean singleWord, boolean lstrip,
                                                    boolean rstrip, boolean normalized, boolean special) {
        return new AddedVocabulary.AddedToken(id, content, singleWord, lstrip, rstrip, normalized, special);
    }

    private static List<String> texts(List<AddedVocabulary.Segment> segments) {
        return segments.stream().map(s -> s.text() + (s.isAdded() ? "#" + s.addedId() : "")).toList();
    }

    @Test
    void addedTokensHonourStripSingleWordAndNormalizedOptions() {
        var lower = new Normalizer.Lowercase();
        var added = new AddedVocabulary(List.of(
                token(0, "my", false, true, true, true, false), token(1, "name", false, false, false, true, false),
                token(2, "ony", true, false, false, true, false), token(3, "[CLS]", false, false, false, false, true),
                token(4, "[SEP]", false, false, false, false, true)), lower);
        assertEquals(List.of("[CLS]#3", " my #0", "name#1", " is anthony ", "[SEP]#4"),
                texts(added.split("[CLS] My name is Anthony [SEP]", lower)));
    }

    @Test
    void singleWordTokensOnlyMatchWholeWords() {
        var lower = new Normalizer.Lowercase();
        var added = new AddedVocabulary(List.of(token(0, "<mask>", true, false, false, true, false)), lower);
        assertEquals(List.of("<mask>#0", " my name ", "<mask>#0", " a<mask> <mask>ony ", "<mask>#0"),
                texts(added.split("<mask> My name <mask> A<mask> <mask>ony <mask>", lower)));
        assertEquals(List.of("<mask>#0", ", ", "<mask>#0", "- ◌̰<mask>"),
                texts(added.split("<mask>, <mask>- ◌̰<mask>", lower)));
    }

    @Test
    void stripOptionsTakeUnicodeSpaceButNotTextAlreadyMatched() {
        var lower = new Normalizer.Lowercase();
        var added = new AddedVocabulary(List.of(token(0, "<mask>", true, true, true, true, false)), lower);
        assertEquals(List.of("hi", " <mask> #0", "there", "\t<mask>\t#0", "<mask>\u2000#0"),
                texts(added.split("Hi <mask> there\t<mask>\t<mask>\u2000", lower)));
    }

    @Test
    void byteFallbackDecoderJoinsValidBytesAndReplacesEachInvalidOne() {
        var d = new Decoder.ByteFallback();
        assertEquals(List.of("Hey", "friend!"), d.decodeChain(List.of("Hey", "friend!")));
        assertEquals(List.of("a"), d.decodeChain(List.of("<0x61>")));
        assertEquals(List.of("\uFFFD"), d.decodeChain(List.of("<0xE5>")));
        assertEquals(List.of("\uFFFD", "\uFFFD"), d.decodeChain(List.of("<0xE5>", "<0x8f>")));
        assertEquals(List.of("叫"), d.decodeChain(List.of("<0xE5>", "<0x8f>", "<0xab>")));
        assertEquals(List.of("叫", "a"), d.decodeChain(List.of("<0xE5>", "<0x8f>", "<0xab>", "a")));
        assertEquals(List.of("\uFFFD", "\uFFFD", "a"), d.decodeChain(List.of("<0xE5>", "<0x8f>", "a")));
    }

    @Test
    void stripDecoderWorksPerToken() {
        assertEquals(List.of("ey", " friend!", "HH"), new Decoder.Strip('H', 1, 0).decodeChain(List.of("Hey", " friend!", "HHH")));
        assertEquals(List.of("He", " friend!"), new Decoder.Strip('y', 0, 1).decodeChain(List.of("Hey", " friend!")));
    }

    @Test
    void metaspaceDecoderDropsTheReplacementOnlyInTheFirstToken() {
        var d = new Decoder.Metaspace('▁', PreTokenizer.PrependScheme.ALWAYS);
        assertEquals(List.of("Hey", " friend!"), d.decodeChain(List.of("▁Hey", "▁friend!")));
    }

    @Test
    void metaspacePreTokenizerSplitsBeforeEachReplacement() {
        var pre = new PreTokenizer.Metaspace('▁', PreTokenizer.PrependScheme.ALWAYS, true);
        var pieces = pre.apply(List.of(new PreTokenizer.Piece("Hey   friend!", true))).stream().map(PreTokenizer.Piece::text).toList();
        assertEquals(List.of("▁Hey", "▁", "▁", "▁friend!"), pieces);
        var first = new PreTokenizer.Metaspace('▁', PreTokenizer.PrependScheme.FIRST, true);
        assertEquals(List.of("a"), first.apply(List.of(new PreTokenizer.Piece("a", false))).stream().map(PreTokenizer.Piece::text).toList());
    }

    @Test
    void byteLevelPreTokenizerMatchesTheGpt2Split() {
        var pre = new PreTokenizer.ByteLevelSplit(false, true);
        var pieces = pre.apply(List.of(new PreTokenizer.Piece("Hello my friend, how is your day going?", true)))
                .stream().map(PreTokenizer.Piece::text).toList();
        assertEquals(List.of("Hello", "Ġmy", "Ġfriend", ",", "Ġhow", "Ġis", "Ġyour", "Ġday", "Ġgoing", "?"), pieces);
        var spaces = pre.apply(List.of(new PreTokenizer.Piece("Hello there       dear", true)))
                .stream().map(PreTokenizer.Piece::text).toList();
        assertEquals(List.of("Hello", "Ġthere", "ĠĠĠĠĠĠ", "Ġdear"), spaces);
    }

    @Test
    void lossyUtf8ReplacesEachMaximalInvalidPartOnce() {
        // the Unicode standard's examples of maximal subparts, as Rust's from_utf8_lossy applies them
        byte[] b = {(byte) 0x61, (byte) 0xF1, (byte) 0x80, (byte) 0x80, (byte) 0xE1, (byte) 0x80, (byte) 0xC2, (byte) 0x62,
                (byte) 0x80, (byte) 0x63, (byte) 0x80, (byte) 0xBF, (byte) 0x64};
        assertEquals("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd", Utf8.decodeLossy(b, b.length));
        byte[] surrogate = {(byte) 0xED, (byte) 0xA0, (byte) 0x80};
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8.decodeLossy(surrogate, 3));
        byte[] ok = "naïve 🤖".getBytes(StandardCharsets.UTF_8);
        assertEquals("naïve 🤖", Utf8.decodeLossy(ok, ok.length));
    }
}
