package dev.moe4j.io.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a split does with the delimiters it finds, as the reference's SplitDelimiterBehavior: drop them
 * (REMOVED), keep each as its own piece (ISOLATED), glue each to the piece before or after it, or keep runs of
 * consecutive delimiters together (CONTIGUOUS). Also holds the matching that feeds it: every split first cuts
 * a string into alternating non-match/match spans that cover it.
 */
public enum SplitBehavior {
    REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS;

    /** A stretch [start, end) of a string and whether it is a delimiter match. */
    record Span(int start, int end, boolean match) {
    }

    /** Parses the reference's spelling ("Isolated", "MergedWithNext", ...). */
    static SplitBehavior parse(String name) {
        return switch (name) {
            case "Removed" -> REMOVED;
            case "Isolated" -> ISOLATED;
            case "MergedWithPrevious" -> MERGED_WITH_PREVIOUS;
            case "MergedWithNext" -> MERGED_WITH_NEXT;
            case "Contiguous" -> CONTIGUOUS;
            default -> null;
        };
    }

    /** The [start, end) ranges of the pieces this behaviour keeps, given the match spans; empty ones are dropped. */
    List<int[]> apply(List<Span> spans) {
        var pieces = new ArrayList<int[]>(spans.size());
        switch (this) {
            case REMOVED -> spans.stream().filter(sp -> !sp.match()).forEach(sp -> pieces.add(new int[] {sp.start(), sp.end()}));
            case ISOLATED -> spans.forEach(sp -> pieces.add(new int[] {sp.start(), sp.end()}));
            case CONTIGUOUS -> {
                boolean previous = false;
                for (Span sp : spans) {
                    if (!pieces.isEmpty() && sp.match() == previous) pieces.getLast()[1] = sp.end();
                    else pieces.add(new int[] {sp.start(), sp.end()});
                    previous = sp.match();
                }
            }
            case MERGED_WITH_PREVIOUS -> {
                boolean previous = false;
                for (Span sp : spans) {
                    if (!pieces.isEmpty() && sp.match() && !previous) pieces.getLast()[1] = sp.end();
                    else pieces.add(new int[] {sp.start(), sp.end()});
                    previous = sp.match();
                }
            }
            case MERGED_WITH_NEXT -> {
                boolean previous = false;
                for (int k = spans.size() - 1; k >= 0; k--) {
                    Span sp = spans.get(k);
                    if (!pieces.isEmpty() && sp.match() && !previous) pieces.getLast()[0] = sp.start();
                    else pieces.add(new int[] {sp.start(), sp.end()});
                    previous = sp.match();
                }
                java.util.Collections.reverse(pieces);
            }
        }
        pieces.removeIf(p -> p[1] <= p[0]);
        return pieces;
    }

    /** Spans of a regular expression's matches (empty matches are kept as empty spans and later dropped). */
    static List<Span> matches(String s, Pattern pattern) {
        var spans = new ArrayList<Span>();
        if (s.isEmpty()) return spans;
        Matcher m = pattern.matcher(s);
        int previous = 0;
        while (m.find()) {
            if (m.start() != previous) spans.add(new Span(previous, m.start(), false));
            spans.add(new Span(m.start(), m.end(), true));
            previous = m.end();
        }
        if (previous != s.length()) spans.add(new Span(previous, s.length(), false));
        return spans;
    }

    /** Spans where every code point satisfying {@code delimiter} is a match of its own. */
    static List<Span> matches(String s, IntPredicate delimiter) {
        var spans = new ArrayList<Span>();
        int last = 0;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int n = Character.charCount(cp);
            if (delimiter.test(cp)) {
                if (last < i) spans.add(new Span(last, i, false));
                spans.add(new Span(i, i + n, true));
                last = i + n;
            }
            i += n;
        }
        if (last < s.length()) spans.add(new Span(last, s.length(), false));
        return spans;
    }

    /** Spans of the non-overlapping occurrences of a literal, left to right (an empty literal matches nothing). */
    static List<Span> matches(String s, String literal) {
        if (literal.isEmpty()) return s.isEmpty() ? List.of() : List.of(new Span(0, s.length(), false));
        return matches(s, Pattern.compile(Pattern.quote(literal)));
    }

    /** Swaps match and non-match, for the "invert" option of a split. */
    static List<Span> invert(List<Span> spans) {
        return spans.stream().map(sp -> new Span(sp.start(), sp.end(), !sp.match())).toList();
    }
}
