package dev.moe4j.model.generate;

import dev.moe4j.io.tokenizer.StreamingDecoder;
import dev.moe4j.io.tokenizer.Tokenizer;

/**
 * Turns generated ids into text: incrementally while a reply streams out, and one id alone for expert traces. A
 * tokenizer provides it; generation itself works on ids only.
 */
public interface TokenText {
    /**
     * The text of a Hugging Face tokenizer: replies skip special tokens (an end-of-turn marker is not shown), a
     * single id in a trace keeps them (the trace should say that a token was {@code <|im_end|>}).
     */
    static TokenText of(Tokenizer tokenizer) {
        return of(tokenizer, true);
    }

    /**
     * A Hugging Face tokenizer's text with the special tokens kept in replies too: for formats whose markers are
     * special tokens (gpt-oss's harmony channels), which are read from the text and then left out of what is shown.
     */
    static TokenText withSpecialTokens(Tokenizer tokenizer) {
        return of(tokenizer, false);
    }

    private static TokenText of(Tokenizer tokenizer, boolean skipSpecialTokens) {
        return new TokenText() {
            @Override
            public Incremental incremental() {
                return new Incremental() {
                    private StreamingDecoder d = tokenizer.streamingDecoder(skipSpecialTokens);

                    @Override
                    public String step(int id) {
                        try {
                            return d.step(id);
                        } catch (IllegalStateException e) {
                            // Byte-fallback runs can turn text already released into U+FFFD once a later byte
                            // joins them (the reference's DecodeStream fails the same way). What was shown stays
                            // shown: decoding goes on from this id with a fresh window.
                            d = tokenizer.streamingDecoder(skipSpecialTokens);
                            return d.step(id);
                        }
                    }

                    @Override
                    public String finish() {
                        return d.finish();
                    }
                };
            }

            @Override
            public String of(int id) {
                return tokenizer.decode(new int[] {id}, false);
            }
        };
    }

    /** A fresh incremental decoder for one sequence of generated ids. */
    Incremental incremental();

    /** The text of one id on its own (for traces; a byte token alone may not be whole text). */
    String of(int id);

    /**
     * Decodes ids one at a time and releases text only once it is final (never half a UTF-8 character); the
     * pieces concatenate to the decoding of all ids.
     */
    interface Incremental {
        /** Adds one id; returns the text that became final, possibly empty. */
        String step(int id);

        /** At the end: whatever is still held back. */
        String finish();
    }
}
