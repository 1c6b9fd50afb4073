package dev.moe4j.model;

import dev.moe4j.core.BadInputException;
import dev.moe4j.moe.router.RoutingPolicy;

/**
 * Where a sequence stands in a {@link LanguageModel}: its KV cache, the next position to fill, and the routing
 * policy its positions were computed with (a cache holds the keys and values of one routing only).
 */
public interface InferenceState {
    /** Positions already fed (the next token goes at this position). */
    int position();

    /** The most positions this state can hold. */
    int capacity();

    /**
     * Forgets the positions from {@code position} on and keeps those before it, with the memory: the next token
     * fed goes at {@code position} (0 starts a new sequence). Nothing is cleared; what lies beyond is overwritten
     * as the sequence goes on, so a kept prefix costs nothing to return to.
     */
    void rewind(int position);

    /**
     * A state of {@code capacity} positions holding a copy of this one's filled positions (for a sequence that
     * outgrew this state, or a second sequence from the same beginning); this state is left as it was. A paged
     * cache shares its blocks with the copy instead of copying them.
     */
    InferenceState grown(int capacity);

    /**
     * Fills this empty state with the longest beginning of {@code prompt}, at most {@code most} positions, whose
     * keys and values the model keeps from earlier sequences (its prefix cache; see
     * {@link LanguageModel#cachePrefixes}), computed with this state's routing; returns how many positions it now
     * holds. 0 when it holds any already, when the model keeps none, or for a state that cannot share.
     */
    default int takeCachedPrefix(int[] prompt, int most) {
        return 0;
    }

    /**
     * Gives back the state's memory now (a GPU's KV cache is not the garbage collector's); the state must not be
     * used afterwards. Nothing to do for a state in host memory.
     */
    default void release() {
    }

    /** The routing policy this sequence's positions are computed with ({@link RoutingPolicy#TRAINED} unless set). */
    default RoutingPolicy routing() {
        return RoutingPolicy.TRAINED;
    }

    /**
     * Routes this sequence's next positions by {@code policy}, which {@link LanguageModel#checkRouting} accepted. Only
     * an empty state (position 0) takes a new policy: the keys and values it holds were computed under its own.
     */
    default void routing(RoutingPolicy policy) {
        if (!policy.isTrained()) {
            throw new BadInputException("this model's states cannot route by a policy (" + policy + ")");
        }
    }
}
