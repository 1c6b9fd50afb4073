package dev.moe4j.model.generate;

/**
 * Turns generated ids into text: incrementally while a reply streams out, and one id alone for expert traces. A
 * tokenizer provides it; generation itself works on ids only.
 */
public interface TokenText {
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
