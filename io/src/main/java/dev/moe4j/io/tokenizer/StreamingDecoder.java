package dev.moe4j.io.tokenizer;

import java.util.Arrays;

/**
 * Decodes generated ids one at a time and hands out text only when it is final: never half a UTF-8 character
 * (byte-level and byte-fallback tokens can split one) and never text a later token would change (Metaspace
 * decoders strip the first token's space). It follows the reference's DecodeStream: decode a short window of
 * recent ids and emit what the window adds beyond the text of its older part. The pieces it returns concatenate
 * to {@link Tokenizer#decode} of all ids. Not thread-safe: one per generation.
 */
public final class StreamingDecoder {
    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] ids = new int[16];
    private int size;
    private String prefix = "";
    private int prefixIndex;

    StreamingDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
    }

    /** Adds one id; returns the text that became final, possibly empty. */
    public String step(int id) {
        if (prefix.isEmpty() && size > 0) {
            String p = decodeWindow();
            if (!p.endsWith(String.valueOf(Utf8.REPLACEMENT))) {
                prefix = p;
                prefixIndex = size;
            }
        }
        if (size == ids.length) ids = Arrays.copyOf(ids, size * 2);
        ids[size++] = id;
        String text = decodeWindow();
        if (text.length() <= prefix.length() || text.endsWith(String.valueOf(Utf8.REPLACEMENT))) return "";
        if (!text.startsWith(prefix)) {
            throw new IllegalStateException("streaming decode lost its prefix: '" + prefix + "' vs '" + text + "'");
        }
        String fresh = text.substring(prefix.length());
        int newPrefixIndex = size - prefixIndex;
        System.arraycopy(ids, prefixIndex, ids, 0, size - prefixIndex);
        size -= prefixIndex;
        prefix = decodeWindow();
        prefixIndex = newPrefixIndex;
        return fresh;
    }

    /** The text still held back (an incomplete character at the end of generation, as U+FFFD), emptying the window. */
    public String finish() {
        String text = decodeWindow();
        String rest = text.startsWith(prefix) ? text.substring(prefix.length()) : "";
        size = 0;
        prefix = "";
        prefixIndex = 0;
        return rest;
    }

    private String decodeWindow() {
        return tokenizer.decode(ids, 0, size, skipSpecialTokens);
    }
}
