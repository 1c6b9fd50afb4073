package dev.moe4j.train.data;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

/**
 * Fuzzes pre-tokenised training data (JSONL, one array of token ids per line, vocabulary of 512): a file is read
 * and split into training and validation documents, or refused in one line naming the line. Seeds:
 * {@code JsonlTokensFuzzTestInputs/}.
 */
class JsonlTokensFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("jsonl");

    @FuzzTest
    @DictionaryEntries({"[", "]", ", ", "511", "512", "-1", "2147483648"})
    void anyJsonlFileReadsAndSplitsOrIsRefusedInOneLine(byte[] file) throws Exception {
        var path = FILES.write("data.jsonl", file);
        CleanRefusal.check(() -> {
            TokenStream stream = JsonlTokens.read(path, 512);
            JsonlTokens.split(stream, 0.1);
        });
    }
}
