package dev.moe4j.io.tokenizer;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

/**
 * Fuzzes {@code tokenizer.json}: a file that loads must also encode and decode text (the pre-tokenizer patterns,
 * normalizers and decoders it declares run only then), or be refused in one line. Seeds:
 * {@code TokenizerJsonFuzzTestInputs/}.
 */
class TokenizerJsonFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("tokenizer");
    /** Letters, digits, spaces and newlines, punctuation, accents, CJK, an emoji and a lone special token. */
    private static final String TEXT = "Hello, world!  It's 2026.\n\tÉtoile naïve — 東京 🙂 <s> </s><|endoftext|>";

    @FuzzTest
    @DictionaryEntries({"\"model\"", "\"type\"", "\"BPE\"", "\"vocab\"", "\"merges\"", "\"added_tokens\"",
            "\"normalizer\"", "\"pre_tokenizer\"", "\"post_processor\"", "\"decoder\"", "\"ByteLevel\"",
            "\"Metaspace\"", "\"Sequence\"", "\"Split\"", "\"Regex\"", "\"pattern\"", "\"byte_fallback\"",
            "\"TemplateProcessing\"", "\"special\"", "\"content\"", "\"id\""})
    void anyTokenizerJsonLoadsAndTokenizesOrIsRefusedInOneLine(byte[] json) throws Exception {
        var path = FILES.write("tokenizer.json", json);
        CleanRefusal.check(() -> {
            Tokenizer tokenizer = Tokenizer.load(path);
            for (boolean special : new boolean[] {false, true}) {
                int[] ids = tokenizer.encodeIds(TEXT, special);
                tokenizer.decode(ids, special);
                tokenizer.decode(ids, !special);
            }
        });
    }
}
