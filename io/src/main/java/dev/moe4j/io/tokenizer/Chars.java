package dev.moe4j.io.tokenizer;

/**
 * Character classes as Rust's standard library defines them (the reference is written in Rust), which differ
 * from Java's own: Rust's whitespace is the Unicode White_Space property (no-break space included), Java's
 * Character.isWhitespace is not.
 */
final class Chars {
    private Chars() {
    }

    /** Unicode White_Space, as Rust's char::is_whitespace. */
    static boolean isWhitespace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || Character.isSpaceChar(cp);
    }

    /** General categories Nd, Nl and No, as Rust's char::is_numeric. */
    static boolean isNumeric(int cp) {
        int t = Character.getType(cp);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }

    /** ASCII punctuation or any Unicode punctuation category (P*), as the Punctuation pre-tokenizer uses. */
    static boolean isPunctuation(int cp) {
        if (cp < 0x80) {
            return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60)
                    || (cp >= 0x7B && cp <= 0x7E);
        }
        return switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                 Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                 Character.OTHER_PUNCTUATION -> true;
            default -> false;
        };
    }
}
