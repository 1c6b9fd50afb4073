package dev.moe4j.model.generate;

import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.Resources;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A Hugging Face tokenizer as the text of generated ids (the mixtral fixture's metaspace BPE). */
class TokenTextTest {
    private final Tokenizer tokenizer = Tokenizer.load(Resources.path("generate/metaspace-tokenizer.json"));
    private final TokenText text = TokenText.of(tokenizer);

    private String stream(int... ids) {
        var d = text.incremental();
        var out = new StringBuilder();
        for (int id : ids) {
            out.append(d.step(id));
        }
        return out.append(d.finish()).toString();
    }

    @Test
    void streamedPiecesAddUpToTheDecodedText() {
        int[] ids = tokenizer.encodeIds("Hello world, here is a test of streaming é and ü.", false);
        assertEquals(tokenizer.decode(ids, true), stream(ids));
    }

    @Test
    void specialTokensAreSkippedInRepliesButNamedInTraces() {
        assertEquals("", stream(2));
        assertEquals("</s>", text.of(2));
    }

    @Test
    void aByteRunThatSpoilsReleasedTextDoesNotStopTheStream() {
        // <0x5E> alone is "^"; followed by <0x80> the run is invalid UTF-8 and decodes as two U+FFFD, which
        // contradicts the "^" already released: the stream goes on instead of failing
        String s = stream(97, 131, 400);
        assertTrue(s.startsWith("^"), s);
        assertTrue(s.endsWith("icen"), s);
    }
}
