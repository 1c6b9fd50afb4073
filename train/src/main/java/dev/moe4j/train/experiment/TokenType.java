package dev.moe4j.train.experiment;

/**
 * A coarse class of a token by its text, to ask whether experts specialise by the kind of token (Mixtral and
 * OLMoE report that they do, more than by domain). A token belongs to the first class that fits, in this order.
 */
public enum TokenType {
    /** The end-of-text separator and other special tokens. */
    SPECIAL("special"),
    /** Spaces, tabs and line ends only (code indentation, paragraph breaks). */
    WHITESPACE("whitespace"),
    /** Contains a CJK ideograph or CJK punctuation (after an optional leading space). */
    CJK("CJK"),
    /** Digits, with optional spaces. */
    DIGITS("digits"),
    /** Punctuation and symbols only (with optional spaces): brackets, operators, commas, full stops. */
    PUNCTUATION("punctuation"),
    /**
     * Code-like words: an underscore, a letter-digit mix, or a lower-case letter followed by an upper-case one
     * (camelCase) — identifiers rather than prose.
     */
    IDENTIFIER("identifier"),
    /** A word starting with a capital letter (names, sentence starts, speakers). */
    CAPITALISED("capitalised word"),
    /** Lower-case letters (word pieces of prose or keywords). */
    WORD("word"),
    /** Anything else (mixed letters and symbols, incomplete UTF-8). */
    OTHER("other");

    private final String label;

    TokenType(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    /** The class of a token's decoded text; {@code special} for the tokenizer's special tokens. */
    public static TokenType of(String text, boolean special) {
        if (special) {
            return SPECIAL;
        }
        if (text.isEmpty()) {
            return OTHER;
        }
        String core = text.strip();
        if (core.isEmpty()) {
            return WHITESPACE;
        }
        boolean letters = false, digits = false, symbols = false, upperAfterLower = false, underscore = false;
        boolean cjk = false, replacement = false;
        int previous = -1;
        for (int i = 0; i < core.length(); ) {
            int c = core.codePointAt(i);
            i += Character.charCount(c);
            if (c == 0xFFFD) {
                replacement = true;
            } else if (isCjk(c)) {
                cjk = true;
            } else if (Character.isLetter(c)) {
                letters = true;
                if (Character.isUpperCase(c) && previous >= 0 && Character.isLowerCase(previous)) {
                    upperAfterLower = true;
                }
            } else if (Character.isDigit(c)) {
                digits = true;
            } else if (c == '_') {
                underscore = true;
            } else if (!Character.isWhitespace(c)) {
                symbols = true;
            }
            previous = c;
        }
        if (cjk) {
            return CJK;
        }
        if (replacement) {
            return OTHER;
        }
        if (!letters && !underscore) {
            if (digits && !symbols) {
                return DIGITS;
            }
            if (symbols && !digits) {
                return PUNCTUATION;
            }
            return OTHER;
        }
        if (underscore || (letters && digits) || upperAfterLower) {
            return symbols ? OTHER : IDENTIFIER;
        }
        if (symbols) {
            return OTHER;
        }
        return Character.isUpperCase(core.codePointAt(0)) ? CAPITALISED : WORD;
    }

    private static boolean isCjk(int c) {
        Character.UnicodeScript script = Character.UnicodeScript.of(c);
        if (script == Character.UnicodeScript.HAN || script == Character.UnicodeScript.HIRAGANA
                || script == Character.UnicodeScript.KATAKANA || script == Character.UnicodeScript.HANGUL) {
            return true;
        }
        Character.UnicodeBlock block = Character.UnicodeBlock.of(c);
        return block == Character.UnicodeBlock.CJK_SYMBOLS_AND_PUNCTUATION
                || block == Character.UnicodeBlock.HALFWIDTH_AND_FULLWIDTH_FORMS;
    }
}
