package dev.moe4j.io.idx;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

/**
 * Fuzzes the IDX reader (MNIST's and Fashion-MNIST's format), plain and behind gzip: a file reads into an array of
 * exactly its declared size or is refused in one line naming the file and the field. Seeds:
 * {@code IdxFuzzTestInputs/}.
 */
class IdxFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("idx");

    @FuzzTest
    @DictionaryEntries({"\u0000\u0000\u0008\u0003", "\u0000\u0000\u0008\u0001"})
    void anyIdxFileReadsOrIsRefusedInOneLine(byte[] file) throws Exception {
        var path = FILES.write("data.idx", file);
        CleanRefusal.check(() -> {
            IdxFile f = IdxFile.read(path);
            if (f.values().length != (long) f.count() * f.entrySize()) {
                throw new AssertionError("read " + f.values().length + " values for dimensions "
                        + java.util.Arrays.toString(f.dims()));
            }
        });
    }
}
