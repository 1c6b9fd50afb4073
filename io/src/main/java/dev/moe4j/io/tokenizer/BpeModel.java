package dev.moe4j.io.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-pair encoding as the reference's BPE model does it: a word starts as one symbol per character (or per
 * byte via {@code <0xNN>} tokens under byte fallback, or the unknown token), then the adjacent pair with the
 * lowest merge rank is merged, leftmost first, until no ranked pair is left. Words seen before come from a
 * bounded cache, since text repeats its words.
 */
final class BpeModel {
    /** Like the reference: remember at most this many words, and only words shorter than 256 bytes. */
    private static final int CACHE_CAPACITY = 10_000;
    private static final int CACHE_MAX_WORD_BYTES = 256;

    private final Map<String, Integer> vocab;
    private final String[] idToToken;
    private final PairTable merges;
    private final String unkToken;
    private final Integer unkId;
    private final String continuingSubwordPrefix;
    private final String endOfWordSuffix;
    private final boolean fuseUnk;
    private final boolean byteFallback;
    private final boolean ignoreMerges;
    private final int[] byteTokenIds = new int[256];
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param merges pairs in rank order; each must be in the vocabulary, and so must their concatenation (minus
     *               the continuing-subword prefix of the right part)
     */
    BpeModel(Map<String, Integer> vocab, List<String[]> merges, String unkToken, String continuingSubwordPrefix,
             String endOfWordSuffix, boolean fuseUnk, boolean byteFallback, boolean ignoreMerges) {
        this(vocab, merges, null, unkToken, continuingSubwordPrefix, endOfWordSuffix, fuseUnk, byteFallback,
                ignoreMerges);
    }

    /**
     * @param ranks the rank of each merge, or null for their order; merges of equal rank apply leftmost first, which
     *              is how SentencePiece-style vocabularies merge pieces of equal score
     */
    BpeModel(Map<String, Integer> vocab, List<String[]> merges, int[] ranks, String unkToken,
             String continuingSubwordPrefix, String endOfWordSuffix, boolean fuseUnk, boolean byteFallback,
             boolean ignoreMerges) {
        this.vocab = vocab;
        int maxId = vocab.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        this.idToToken = new String[maxId + 1];
        vocab.forEach((token, id) -> idToToken[id] = token);
        this.continuingSubwordPrefix = continuingSubwordPrefix;
        this.endOfWordSuffix = endOfWordSuffix;
        this.fuseUnk = fuseUnk;
        this.byteFallback = byteFallback;
        this.ignoreMerges = ignoreMerges;
        this.unkToken = unkToken;
        this.unkId = unkToken == null ? null : vocab.get(unkToken);
        int prefixLength = continuingSubwordPrefix == null ? 0 : continuingSubwordPrefix.length();
        this.merges = new PairTable(merges.size());
        for (int rank = 0; rank < merges.size(); rank++) {
            String a = merges.get(rank)[0], b = merges.get(rank)[1];
            Integer ia = vocab.get(a), ib = vocab.get(b);
            if (ia == null || ib == null) {
                throw new IllegalArgumentException("merge " + (rank + 1) + " (" + a + " " + b + ") uses a token that is not in the vocabulary");
            }
            String merged = a + (b.length() >= prefixLength ? b.substring(prefixLength) : b);
            Integer im = vocab.get(merged);
            if (im == null) {
                throw new IllegalArgumentException("merge " + (rank + 1) + " makes " + merged + ", which is not in the vocabulary");
            }
            this.merges.put(ia, ib, ranks == null ? rank : ranks[rank], im);
        }
        Arrays.fill(byteTokenIds, -1);
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.format("<0x%02X>", b));
            if (id != null) byteTokenIds[b] = id;
        }
    }

    int size() {
        return vocab.size();
    }

    Integer id(String token) {
        return vocab.get(token);
    }

    String token(int id) {
        return id >= 0 && id < idToToken.length ? idToToken[id] : null;
    }

    Map<String, Integer> vocab() {
        return vocab;
    }

    /** The ids of one pre-tokenised piece. */
    int[] encode(String word) {
        if (word.isEmpty()) return new int[0];
        if (ignoreMerges) {
            Integer whole = vocab.get(word);
            if (whole != null) return new int[] {whole};
        }
        int[] hit = cache.get(word);
        if (hit != null) return hit;
        int[] ids = merge(word);
        if (cache.size() < CACHE_CAPACITY && (word.length() * 3 < CACHE_MAX_WORD_BYTES
                || word.getBytes(StandardCharsets.UTF_8).length < CACHE_MAX_WORD_BYTES)) {
            cache.put(word, ids); // callers never modify the returned array
        }
        return ids;
    }

    private int[] merge(String word) {
        // initial symbols, one per character unless byte fallback or the unknown token says otherwise
        var symbols = new IntList(word.length());
        int pendingUnk = -1;
        for (int i = 0; i < word.length(); ) {
            int cp = word.codePointAt(i);
            int n = Character.charCount(cp);
            String s = word.substring(i, i + n);
            boolean first = i == 0, last = i + n == word.length();
            i += n;
            if (!first && continuingSubwordPrefix != null) s = continuingSubwordPrefix + s;
            if (last && endOfWordSuffix != null) s = s + endOfWordSuffix;
            Integer id = vocab.get(s);
            if (id != null) {
                if (pendingUnk >= 0) {
                    symbols.add(unkId);
                    pendingUnk = -1;
                }
                symbols.add(id);
                continue;
            }
            if (byteFallback && addBytes(s, symbols)) continue;
            if (unkToken != null) {
                // like the reference, an unk_token missing from the vocabulary is an error only once it is needed
                if (unkId == null) throw new IllegalStateException("unk_token " + unkToken + " is not in the vocabulary");
                if (pendingUnk >= 0 && !fuseUnk) symbols.add(unkId);
                pendingUnk = unkId;
            }
            // without an unknown token the character is dropped, as the reference does
        }
        if (pendingUnk >= 0) symbols.add(unkId);
        return mergeAll(symbols.toArray());
    }

    private boolean addBytes(String s, IntList symbols) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        for (byte b : bytes) {
            if (byteTokenIds[b & 0xFF] < 0) return false;
        }
        for (byte b : bytes) symbols.add(byteTokenIds[b & 0xFF]);
        return true;
    }

    /** Repeatedly merges the lowest-ranked adjacent pair, leftmost first (a heap keyed by rank, then position). */
    private int[] mergeAll(int[] c) {
        int n = c.length;
        if (n < 2) return c;
        int[] prev = new int[n], next = new int[n];
        boolean[] dead = new boolean[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        var queue = new PriorityQueue<Long>();
        for (int i = 0; i + 1 < n; i++) {
            long m = merges.get(c[i], c[i + 1]);
            if (m >= 0) queue.add(key(PairTable.rank(m), i));
        }
        int alive = n;
        while (!queue.isEmpty()) {
            long top = queue.poll();
            int rank = (int) (top >>> 32), pos = (int) top;
            if (dead[pos] || next[pos] < 0) continue;
            int right = next[pos];
            long m = merges.get(c[pos], c[right]);
            if (m < 0 || PairTable.rank(m) != rank) continue; // stale entry
            c[pos] = PairTable.newId(m);
            dead[right] = true;
            alive--;
            next[pos] = next[right];
            if (next[pos] >= 0) prev[next[pos]] = pos;
            if (prev[pos] >= 0) {
                long left = merges.get(c[prev[pos]], c[pos]);
                if (left >= 0) queue.add(key(PairTable.rank(left), prev[pos]));
            }
            if (next[pos] >= 0) {
                long after = merges.get(c[pos], c[next[pos]]);
                if (after >= 0) queue.add(key(PairTable.rank(after), pos));
            }
        }
        int[] out = new int[alive];
        for (int i = 0, k = 0; i < n; i++) {
            if (!dead[i]) out[k++] = c[i];
        }
        return out;
    }

    private static long key(int rank, int pos) {
        return ((long) rank << 32) | pos;
    }

    /** A growable int array, to avoid boxing in the hot path. */
    static final class IntList {
        private int[] a;
        private int n;

        IntList(int capacity) {
            a = new int[Math.max(4, capacity)];
        }

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        void addAll(int[] vs) {
            for (int v : vs) add(v);
        }

        int size() {
            return n;
        }

        void clear() {
            n = 0;
        }

        int get(int i) {
            return a[i];
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }

    /** Open-addressing map from a pair of ids to (rank, merged id), both packed in a long. */
    static final class PairTable {
        private final long[] keys;
        private final long[] values;
        private final int mask;

        PairTable(int expected) {
            int cap = Integer.highestOneBit(Math.max(16, expected * 2 + 1) * 2 - 1);
            keys = new long[cap];
            values = new long[cap];
            Arrays.fill(keys, -1L);
            mask = cap - 1;
        }

        /** Records a merge; a pair listed twice keeps its later rank, as the reference's map does. */
        void put(int a, int b, int rank, int newId) {
            long k = ((long) a << 32) | (b & 0xFFFFFFFFL);
            int i = slot(k);
            while (keys[i] != -1L && keys[i] != k) i = (i + 1) & mask;
            keys[i] = k;
            values[i] = ((long) rank << 32) | (newId & 0xFFFFFFFFL);
        }

        /** (rank << 32 | newId), or -1 when the pair does not merge. */
        long get(int a, int b) {
            long k = ((long) a << 32) | (b & 0xFFFFFFFFL);
            int i = slot(k);
            while (keys[i] != -1L) {
                if (keys[i] == k) return values[i];
                i = (i + 1) & mask;
            }
            return -1L;
        }

        static int rank(long v) {
            return (int) (v >>> 32);
        }

        static int newId(long v) {
            return (int) v;
        }

        private int slot(long k) {
            long h = k * 0x9E3779B97F4A7C15L;
            return (int) (h >>> 40) & mask;
        }
    }
}
