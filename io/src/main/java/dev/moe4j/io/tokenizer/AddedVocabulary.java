package dev.moe4j.io.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The added tokens of tokenizer.json (special ones like {@code <s>} and ordinary ones) and how they are cut out
 * of the input before the model sees it: leftmost-longest match, in the raw text for tokens with
 * normalized=false and in the normalised text for the others, with the single_word, lstrip and rstrip options.
 */
final class AddedVocabulary {
    private static final Pattern WORD_CHAR = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);

    /** One entry of "added_tokens". */
    record AddedToken(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip,
                      boolean normalized, boolean special) {
    }

    /** A stretch of input: either an added token (id >= 0) or text for the model. */
    record Segment(String text, int addedId, boolean atStart) {
        boolean isAdded() {
            return addedId >= 0;
        }
    }

    private final List<AddedToken> tokens;
    private final Map<String, AddedToken> byContent = new HashMap<>();
    private final Map<Integer, AddedToken> byId = new HashMap<>();
    private final Matcher raw;
    private final Matcher normalizedMatcher;

    AddedVocabulary(List<AddedToken> tokens, Normalizer normalizer) {
        this.tokens = List.copyOf(tokens);
        for (AddedToken t : tokens) {
            byContent.put(t.content(), t);
            byId.put(t.id(), t);
        }
        var rawTokens = new ArrayList<Entry>();
        var normTokens = new ArrayList<Entry>();
        for (AddedToken t : tokens) {
            if (t.content().isEmpty()) continue;
            if (t.normalized()) {
                String n = normalizer == null ? t.content() : normalizer.normalize(t.content());
                if (!n.isEmpty()) normTokens.add(new Entry(n, t));
            } else {
                rawTokens.add(new Entry(t.content(), t));
            }
        }
        this.raw = new Matcher(rawTokens);
        this.normalizedMatcher = new Matcher(normTokens);
    }

    List<AddedToken> tokens() {
        return tokens;
    }

    AddedToken byContent(String content) {
        return byContent.get(content);
    }

    AddedToken byId(int id) {
        return byId.get(id);
    }

    /**
     * Cuts the input into added tokens and normalised text, in the reference's two passes: raw-matched tokens in
     * the input, then normalised-matched tokens in each normalised stretch.
     */
    List<Segment> split(String input, Normalizer normalizer) {
        var out = new ArrayList<Segment>();
        for (Segment s : raw.split(input, true)) {
            if (s.isAdded()) {
                out.add(s);
                continue;
            }
            String normalized = normalizer == null ? s.text() : normalizer.normalize(s.text());
            out.addAll(normalizedMatcher.split(normalized, s.atStart()));
        }
        return out;
    }

    private record Entry(String pattern, AddedToken token) {
    }

    /** Leftmost-longest search over a set of literal patterns, non-overlapping, left to right. */
    private static final class Matcher {
        private final Map<Character, List<Entry>> byFirstChar = new HashMap<>();

        Matcher(List<Entry> entries) {
            for (Entry e : entries) byFirstChar.computeIfAbsent(e.pattern().charAt(0), k -> new ArrayList<>()).add(e);
            byFirstChar.values().forEach(l -> l.sort(Comparator.comparingInt((Entry e) -> e.pattern().length()).reversed()));
        }

        List<Segment> split(String s, boolean atStart) {
            var out = new ArrayList<Segment>();
            if (s.isEmpty()) return out;
            if (byFirstChar.isEmpty()) {
                out.add(new Segment(s, -1, atStart));
                return out;
            }
            int done = 0; // end of the last emitted segment
            int i = 0;
            while (i < s.length()) {
                Entry hit = null;
                List<Entry> candidates = byFirstChar.get(s.charAt(i));
                if (candidates != null) {
                    for (Entry e : candidates) {
                        if (s.startsWith(e.pattern(), i)) {
                            hit = e;
                            break;
                        }
                    }
                }
                if (hit == null) {
                    i++;
                    continue;
                }
                int start = i, stop = i + hit.pattern().length();
                i = stop; // the search resumes after the match even when the match is rejected
                AddedToken t = hit.token();
                if (t.singleWord()) {
                    boolean startOk = start == 0 || !WORD_CHAR.matcher(String.valueOf(Character.toChars(s.codePointBefore(start)))).matches();
                    boolean stopOk = stop == s.length() || !WORD_CHAR.matcher(String.valueOf(Character.toChars(s.codePointAt(stop)))).matches();
                    if (!startOk || !stopOk) continue;
                }
                if (t.lstrip()) {
                    int k = start;
                    while (k > 0 && Chars.isWhitespace(s.codePointBefore(k))) k -= Character.charCount(s.codePointBefore(k));
                    start = Math.max(k, done);
                }
                if (t.rstrip()) {
                    while (stop < s.length() && Chars.isWhitespace(s.codePointAt(stop))) stop += Character.charCount(s.codePointAt(stop));
                }
                if (done < start) out.add(new Segment(s.substring(done, start), -1, atStart && done == 0));
                out.add(new Segment(s.substring(start, stop), t.id(), atStart && start == 0));
                done = stop;
            }
            if (done < s.length()) out.add(new Segment(s.substring(done), -1, atStart && done == 0));
            return out;
        }
    }
}
