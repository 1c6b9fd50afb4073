package dev.moe4j.io.tokenizer;

import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A text rewrite applied before pre-tokenisation (tokenizer.json's "normalizer"), to each stretch of the input
 * between added tokens. Offsets are not tracked: moe4j needs ids and text, not alignments.
 */
sealed interface Normalizer {
    String normalize(String s);

    /** Applies normalizers in order. */
    record Sequence(List<Normalizer> normalizers) implements Normalizer {
        @Override
        public String normalize(String s) {
            for (Normalizer n : normalizers) s = n.normalize(s);
            return s;
        }
    }

    /** One of the four Unicode normal forms (NFC, NFD, NFKC, NFKD). */
    record Unicode(java.text.Normalizer.Form form) implements Normalizer {
        @Override
        public String normalize(String s) {
            return java.text.Normalizer.normalize(s, form);
        }
    }

    /** Lower-cases each code point on its own (full mappings such as İ to "i̇", no context rules). */
    record Lowercase() implements Normalizer {
        @Override
        public String normalize(String s) {
            var out = new StringBuilder(s.length());
            s.codePoints().forEach(cp -> {
                if (cp < 0x80) out.append((char) Character.toLowerCase(cp));
                else out.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
            });
            return out.toString();
        }
    }

    /** Removes Unicode white space from the left and/or right end. */
    record Strip(boolean left, boolean right) implements Normalizer {
        @Override
        public String normalize(String s) {
            int start = 0, end = s.length();
            if (left) {
                while (start < end && Chars.isWhitespace(s.codePointAt(start))) start += Character.charCount(s.codePointAt(start));
            }
            if (right) {
                while (end > start && Chars.isWhitespace(s.codePointBefore(end))) end -= Character.charCount(s.codePointBefore(end));
            }
            return s.substring(start, end);
        }
    }

    /** Replaces every occurrence of a literal or a regular expression (with $1 group references) by content. */
    record Replace(Pattern pattern, String content, boolean literal) implements Normalizer {
        @Override
        public String normalize(String s) {
            Matcher m = pattern.matcher(s);
            return m.replaceAll(literal ? Matcher.quoteReplacement(content) : content);
        }
    }

    /** Puts a prefix in front of non-empty text (the Llama/Mistral "▁" before the first word). */
    record Prepend(String prefix) implements Normalizer {
        @Override
        public String normalize(String s) {
            return s.isEmpty() ? s : prefix + s;
        }
    }
}
