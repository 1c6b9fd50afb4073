package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.tokenizer.BpeTrainer;
import dev.moe4j.io.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class DataPipelineTest {
    @TempDir
    Path dir;

    @Test
    void aValidFileBesideATrainingFileIsItsValidationSplitOtherwiseTheTailIs() throws Exception {
        Files.writeString(dir.resolve("poems.txt"), "a\nb\nc\nd\n");
        Files.writeString(dir.resolve("poems.valid.txt"), "v\n");
        Files.writeString(dir.resolve("code.txt"), "line one\nline two\nline three\nline four\n");
        var corpus = TextCorpus.load(List.of(dir), 0.25);
        assertEquals(List.of("code", "poems"), corpus.train().stream().map(TextCorpus.Document::name).toList());
        assertEquals("line one\nline two\nline three\n", corpus.train().get(0).text());
        assertEquals("line four\n", corpus.validation().get(0).text());
        assertEquals("v\n", corpus.validation().get(1).text());
    }

    @Test
    void missingDataIsAOneLineError() {
        var e = assertThrows(BadInputException.class, () -> TextCorpus.load(List.of(dir.resolve("nope.txt")), 0.1));
        assertTrue(e.getMessage().contains("nope.txt"), e.getMessage());
    }

    @Test
    void tokenisedTextIsCachedAndReadBackIdentically() throws Exception {
        var docs = List.of(new TextCorpus.Document("a", "hello world, hello moe\n"), new TextCorpus.Document("b", "experts route tokens\n"));
        new BpeTrainer(300, List.of("<|endoftext|>"), 1).train(List.of("hello world hello moe experts route tokens")).write(dir.resolve("tok.json"));
        Tokenizer tok = Tokenizer.load(dir.resolve("tok.json"));
        var cache = new TokenCache(dir.resolve("cache"));
        byte[] identity = Files.readAllBytes(dir.resolve("tok.json"));
        TokenStream first = cache.tokenize(tok, identity, docs, 0);
        try (var files = Files.list(dir.resolve("cache"))) {
            assertEquals(1, files.count());
        }
        TokenStream second = cache.tokenize(tok, identity, docs, 0);
        assertArrayEquals(first.tokens(), second.tokens());
        assertEquals(tok.decode(java.util.Arrays.copyOf(first.tokens(), first.documentStarts()[1] - 1), false), "hello world, hello moe\n");
        assertEquals(0, first.tokens()[first.documentStarts()[1] - 1]); // separator after each document
        assertEquals("b", first.documentAt(first.documentStarts()[1] + 1));
    }

    @Test
    void shuffledBatchesDependOnlyOnSeedAndStepAndTargetsAreShiftedInputs() {
        int[] tokens = new int[1000];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = i;
        }
        var stream = new TokenStream(tokens, new int[] {0}, List.of("d"));
        var a = new BatchSampler(stream, 4, 16, 7, true);
        var b = new BatchSampler(stream, 4, 16, 7, true);
        assertArrayEquals(a.batch(5, 1, 2).inputs(), b.batch(5, 1, 2).inputs());
        assertFalse(java.util.Arrays.equals(a.batch(5, 0, 2).inputs(), a.batch(5, 1, 2).inputs()));
        var batch = a.batch(3, 0, 1);
        for (int i = 0; i < batch.inputs().length; i++) {
            assertEquals(batch.inputs()[i] + 1, batch.targets()[i]);
        }
        var ordered = new BatchSampler(stream, 2, 10, 0, false);
        assertEquals(0, ordered.batch(0, 0, 1).inputs()[0]);
        assertEquals(10, ordered.batch(0, 0, 1).inputs()[10]);
        assertEquals(20, ordered.batch(1, 0, 1).inputs()[0]);
    }

    @Test
    void jsonlLinesArePackedInOrderAndBadIdsNameTheLine() throws Exception {
        Path f = dir.resolve("ids.jsonl");
        Files.writeString(f, "[1, 2, 3]\n\n[4,5]\n[6]\n");
        TokenStream s = JsonlTokens.read(f, 10);
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, s.tokens());
        TokenStream[] split = JsonlTokens.split(s, 0.34);
        assertArrayEquals(new int[] {1, 2, 3, 4, 5}, split[0].tokens());
        assertArrayEquals(new int[] {6}, split[1].tokens());
        Files.writeString(f, "[1, 2]\n[3, 12]\n");
        var e = assertThrows(BadInputException.class, () -> JsonlTokens.read(f, 10));
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("12"), e.getMessage());
    }
}
