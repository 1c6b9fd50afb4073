package dev.moe4j.model.generate.structured;

import dev.moe4j.io.tokenizer.Tokenizer;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.stream.IntStream;

/**
 * The vocabulary as symbol strings for constrained decoding: each id's bytes in the middle of a text, a special
 * token as the one symbol 256 + id. Ids are kept sorted by their symbols with the length of the prefix each shares
 * with the one before, so that a walk in that order advances a matcher once per distinct prefix and skips every
 * id below a prefix that is not allowed. Ids that add no bytes are left out (they could repeat forever).
 */
public final class TokenVocabulary {
    private static final Map<Tokenizer, TokenVocabulary> CACHE = new WeakHashMap<>();

    private final int size;
    private final int[][] symbolsById;
    /** Ids in the order of their symbols. */
    private final int[] order;
    /** For each position of {@link #order}, the symbols it shares with the id before it. */
    private final int[] shared;
    private final int longest;

    private TokenVocabulary(int[][] symbolsById) {
        this.size = symbolsById.length;
        this.symbolsById = symbolsById;
        this.order = IntStream.range(0, size).filter(i -> symbolsById[i] != null && symbolsById[i].length > 0)
                .boxed().sorted(Comparator.comparing(i -> symbolsById[i], Arrays::compare))
                .mapToInt(Integer::intValue).toArray();
        this.shared = new int[order.length];
        int max = 0;
        for (int i = 0; i < order.length; i++) {
            int[] s = symbolsById[order[i]];
            max = Math.max(max, s.length);
            if (i > 0) {
                int[] p = symbolsById[order[i - 1]];
                int m = Arrays.mismatch(p, s);
                shared[i] = m < 0 ? s.length : m;
            }
        }
        this.longest = max;
    }

    /** The symbols of each id, indexed by id (null or empty: never allowed). */
    public static TokenVocabulary of(int[][] symbolsById) {
        return new TokenVocabulary(symbolsById.clone());
    }

    /** The vocabulary of a tokenizer, built once per tokenizer. */
    public static TokenVocabulary of(Tokenizer tokenizer) {
        synchronized (CACHE) {
            return CACHE.computeIfAbsent(tokenizer, t -> {
                int[][] symbols = new int[t.vocabSize()][];
                for (int id = 0; id < symbols.length; id++) {
                    if (t.isSpecial(id)) {
                        symbols[id] = new int[] {special(id)};
                        continue;
                    }
                    byte[] b = t.tokenBytes(id);
                    if (b != null) {
                        symbols[id] = new int[b.length];
                        for (int i = 0; i < b.length; i++) {
                            symbols[id][i] = b[i] & 0xFF;
                        }
                    }
                }
                return new TokenVocabulary(symbols);
            });
        }
    }

    /** The symbol of a special token. */
    public static int special(int id) {
        return 256 + id;
    }

    /** How many ids there are (allowed or not). */
    public int size() {
        return size;
    }

    /** The symbols of one id, or null for an id that is never allowed. */
    int[] symbols(int id) {
        return id >= 0 && id < size && symbolsById[id] != null && symbolsById[id].length > 0 ? symbolsById[id] : null;
    }

    /**
     * Marks in {@code allowed} every id whose symbols {@code start} takes whole. Work is one matcher step per
     * distinct allowed prefix: ids below a refused prefix are skipped in one jump.
     */
    void allowed(ByteMatcher start, java.util.BitSet allowed) {
        ByteMatcher[] at = new ByteMatcher[longest + 1];
        at[0] = start;
        int valid = 0; // at[0..valid] hold the matchers along the last walked id's symbols
        int dead = Integer.MAX_VALUE; // the last walked id failed at this symbol index
        int common = 0; // symbols the next id shares with the last walked one
        for (int i = 0; i < order.length; i++) {
            common = i == 0 ? 0 : Math.min(common, shared[i]);
            if (shared[i] > dead && common > dead) {
                continue; // shares the refused prefix
            }
            int[] s = symbolsById[order[i]];
            int depth = Math.min(common, valid);
            dead = Integer.MAX_VALUE;
            while (depth < s.length) {
                ByteMatcher next = at[depth].advance(s[depth]);
                if (next == null) {
                    dead = depth;
                    break;
                }
                at[++depth] = next;
            }
            valid = depth;
            common = s.length;
            if (dead == Integer.MAX_VALUE) {
                allowed.set(order[i]);
            }
        }
    }
}
