package dev.moe4j.io.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Pattern;

/**
 * Cuts normalised text into the pieces the model encodes one by one (tokenizer.json's "pre_tokenizer"); merges
 * never cross a piece boundary.
 */
sealed interface PreTokenizer {
    /** The word-splitting expression of GPT-2, used by ByteLevel when use_regex is set. */
    String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    /** A piece of text; {@code atStart} when it begins at the very start of the input (Metaspace "first"). */
    record Piece(String text, boolean atStart) {
    }

    /** Splits every piece. */
    List<Piece> apply(List<Piece> pieces);

    /** Splits each piece by its match spans with the given behaviour. */
    static List<Piece> split(List<Piece> pieces, java.util.function.Function<String, List<SplitBehavior.Span>> spans,
                             SplitBehavior behavior) {
        var out = new ArrayList<Piece>(pieces.size() * 2);
        for (Piece p : pieces) {
            for (int[] r : behavior.apply(spans.apply(p.text()))) {
                out.add(new Piece(p.text().substring(r[0], r[1]), p.atStart() && r[0] == 0));
            }
        }
        return out;
    }

    /** Applies pre-tokenizers in order. */
    record Sequence(List<PreTokenizer> steps) implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            for (PreTokenizer step : steps) pieces = step.apply(pieces);
            return pieces;
        }
    }

    /**
     * GPT-2's byte-level step: optionally a leading space, optionally the GPT-2 word split, then every UTF-8 byte
     * replaced by its printable stand-in so the vocabulary covers any input.
     */
    record ByteLevelSplit(boolean addPrefixSpace, boolean useRegex) implements PreTokenizer {
        private static final Pattern GPT2 = OnigRegex.compile(GPT2_PATTERN);

        @Override
        public List<Piece> apply(List<Piece> pieces) {
            var prefixed = new ArrayList<Piece>(pieces.size());
            for (Piece p : pieces) {
                String t = addPrefixSpace && !p.text().startsWith(" ") ? " " + p.text() : p.text();
                prefixed.add(new Piece(t, p.atStart()));
            }
            List<Piece> split = useRegex
                    ? PreTokenizer.split(prefixed, s -> SplitBehavior.matches(s, GPT2), SplitBehavior.ISOLATED)
                    : prefixed;
            var out = new ArrayList<Piece>(split.size());
            for (Piece p : split) out.add(new Piece(ByteLevel.encode(p.text()), p.atStart()));
            return out;
        }
    }

    /** A split on a literal or an (Oniguruma) regular expression, optionally keeping the matches instead. */
    record Split(Pattern pattern, SplitBehavior behavior, boolean invert) implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            return PreTokenizer.split(pieces, s -> {
                var spans = SplitBehavior.matches(s, pattern);
                return invert ? SplitBehavior.invert(spans) : spans;
            }, behavior);
        }
    }

    /** When Metaspace puts the replacement character in front of a piece. */
    enum PrependScheme { ALWAYS, FIRST, NEVER }

    /**
     * SentencePiece's convention: spaces become the replacement character (▁), one is put in front (always, only
     * at the start of the input, or never) and the text is cut before each ▁.
     */
    record Metaspace(char replacement, PrependScheme prependScheme, boolean split) implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            var rewritten = new ArrayList<Piece>(pieces.size());
            for (Piece p : pieces) {
                String t = p.text().replace(' ', replacement);
                boolean prepend = switch (prependScheme) {
                    case ALWAYS -> true;
                    case FIRST -> p.atStart();
                    case NEVER -> false;
                };
                if (prepend && (t.isEmpty() || t.charAt(0) != replacement)) t = replacement + t;
                rewritten.add(new Piece(t, p.atStart()));
            }
            if (!split) return rewritten;
            return PreTokenizer.split(rewritten, s -> SplitBehavior.matches(s, (IntPredicate) cp -> cp == replacement),
                    SplitBehavior.MERGED_WITH_NEXT);
        }
    }

    /** Cuts digits apart from the rest: each digit alone, or runs of digits together. */
    record Digits(boolean individual) implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            return PreTokenizer.split(pieces, s -> SplitBehavior.matches(s, (IntPredicate) Chars::isNumeric),
                    individual ? SplitBehavior.ISOLATED : SplitBehavior.CONTIGUOUS);
        }
    }

    /** Cuts at each punctuation character. */
    record Punctuation(SplitBehavior behavior) implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            return PreTokenizer.split(pieces, s -> SplitBehavior.matches(s, (IntPredicate) Chars::isPunctuation), behavior);
        }
    }

    /** Keeps runs of word characters and runs of other non-space characters; drops white space. */
    record Whitespace() implements PreTokenizer {
        private static final Pattern WORDS = Pattern.compile("\\w+|[^\\w\\s]+", Pattern.UNICODE_CHARACTER_CLASS);

        @Override
        public List<Piece> apply(List<Piece> pieces) {
            return PreTokenizer.split(pieces, s -> SplitBehavior.invert(SplitBehavior.matches(s, WORDS)),
                    SplitBehavior.REMOVED);
        }
    }

    /** Cuts at white space, dropping it. */
    record WhitespaceSplit() implements PreTokenizer {
        @Override
        public List<Piece> apply(List<Piece> pieces) {
            return PreTokenizer.split(pieces, s -> SplitBehavior.matches(s, (IntPredicate) Chars::isWhitespace),
                    SplitBehavior.REMOVED);
        }
    }
}
