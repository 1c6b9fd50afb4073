package dev.moe4j.model.generate.structured;

import java.util.BitSet;
import java.util.Set;

/**
 * Grammar-constrained decoding of one sequence: which ids may come next so that the output stays a prefix of
 * something its {@link Shape} allows, and the end-of-sequence ids only once it is complete. The sampler asks it
 * before choosing ({@link #mask} or, for greedy choice, {@link #allows} on the best candidates) and tells it the
 * choice ({@link #accept}).
 */
public final class OutputConstraint {
    private final TokenVocabulary vocabulary;
    private final Set<Integer> endIds;
    private ByteMatcher state;

    OutputConstraint(ByteMatcher state, TokenVocabulary vocabulary, Set<Integer> endIds) {
        this.state = state;
        this.vocabulary = vocabulary;
        this.endIds = Set.copyOf(endIds);
    }

    /** Whether {@code id} may come next. */
    public boolean allows(int id) {
        if (endIds.contains(id)) {
            return state.accepting();
        }
        int[] s = vocabulary.symbols(id);
        return s != null && state.advance(s) != null;
    }

    /**
     * Sets every logit whose id may not come next to negative infinity; returns how many ids stay allowed (0 when
     * the output is complete and the model has no end-of-sequence id to say so).
     */
    public int mask(float[] logits) {
        var allowed = new BitSet(logits.length);
        vocabulary.allowed(state, allowed);
        if (state.accepting()) {
            for (int id : endIds) {
                if (id < logits.length) {
                    allowed.set(id);
                }
            }
        }
        for (int id = allowed.nextClearBit(0); id < logits.length; id = allowed.nextClearBit(id + 1)) {
            logits[id] = Float.NEGATIVE_INFINITY;
        }
        return allowed.cardinality();
    }

    /** Moves past a chosen id, which must be allowed. */
    public void accept(int id) {
        if (endIds.contains(id)) {
            return;
        }
        int[] s = vocabulary.symbols(id);
        ByteMatcher next = s == null ? null : state.advance(s);
        if (next == null) {
            throw new IllegalStateException("token " + id + " is not allowed by the output's grammar here");
        }
        state = next;
    }

    /** Whether the output so far is complete (the end-of-sequence ids are allowed). */
    public boolean complete() {
        return state.accepting();
    }
}
