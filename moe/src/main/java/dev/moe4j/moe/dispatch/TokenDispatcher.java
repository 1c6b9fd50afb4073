package dev.moe4j.moe.dispatch;

import java.util.Arrays;

/**
 * Serves token-choice routing under a capacity: every token's j-th choice is served before any (j+1)-th choice
 * (as in V-MoE and GShard), tokens claim slots in {@link Priority} order, and an expert takes at most
 * {@code capacity} tokens. A choice that finds its expert full is dropped or, with {@link Overflow#NEXT_CHOICE},
 * re-routed afterwards to the token's next preferred expert with room.
 */
public final class TokenDispatcher {
    private TokenDispatcher() {
    }

    /**
     * The outcome, in service order: {@code token[i]} went to {@code expert[i]} for i < count. {@code dropped}
     * counts the choices that were not served at all (a re-routed choice is served), {@code rerouted} those served
     * by a later preference.
     */
    public record Assignments(int count, int[] token, int[] expert, int requested, int dropped, int rerouted) {
    }

    /**
     * @param choices    [tokens, k] preferred experts, best first; -1 past the last of a token that chose fewer
     * @param preference [tokens, width] every eligible expert of each token, best first (its first k entries are
     *                   the choices); only read for {@link Overflow#NEXT_CHOICE}, may be null otherwise
     * @param score      [tokens] the priority of each token (its largest router probability); read only for
     *                   {@link Priority#SCORE}, may be null otherwise
     * @param capacity   tokens per expert; {@code Integer.MAX_VALUE} serves everything
     */
    public static Assignments assign(int tokens, int experts, int k, int[] choices, int[] preference, int width,
                                     float[] score, int capacity, Overflow overflow, Priority priority) {
        int[] order = serviceOrder(tokens, score, priority);
        int[] load = new int[experts];
        int[] token = new int[tokens * k];
        int[] expert = new int[tokens * k];
        int count = 0;
        // (token, rank) pairs whose expert was full, in the order they were met.
        int[] overflowToken = new int[tokens * k];
        int overflowCount = 0;
        int requested = 0;
        for (int j = 0; j < k; j++) {
            for (int t : order) {
                int e = choices[t * k + j];
                if (e < 0) {
                    continue; // a token that chose fewer than k experts (a routing policy)
                }
                requested++;
                if (load[e] < capacity) {
                    load[e]++;
                    token[count] = t;
                    expert[count++] = e;
                } else {
                    overflowToken[overflowCount++] = t;
                }
            }
        }
        int rerouted = 0;
        if (overflow == Overflow.NEXT_CHOICE && overflowCount > 0) {
            if (preference == null) {
                throw new IllegalArgumentException("NEXT_CHOICE needs each token's preference list");
            }
            boolean[] holds = new boolean[experts];
            for (int i = 0; i < overflowCount; i++) {
                int t = overflowToken[i];
                markHeld(holds, t, token, expert, count);
                for (int p = 0; p < width; p++) {
                    int e = preference[t * width + p];
                    if (e >= 0 && !holds[e] && load[e] < capacity) {
                        load[e]++;
                        token[count] = t;
                        expert[count++] = e;
                        rerouted++;
                        break;
                    }
                }
                Arrays.fill(holds, false);
            }
        }
        return new Assignments(count, token, expert, requested, requested - count, rerouted);
    }

    /** The experts token t already holds (a linear scan: overflow is rare and the lists are short). */
    private static void markHeld(boolean[] holds, int t, int[] token, int[] expert, int count) {
        for (int i = 0; i < count; i++) {
            if (token[i] == t) {
                holds[expert[i]] = true;
            }
        }
    }

    /** Token indices in the order they claim slots. */
    public static int[] serviceOrder(int tokens, float[] score, Priority priority) {
        if (priority == Priority.POSITION) {
            return java.util.stream.IntStream.range(0, tokens).toArray();
        }
        Integer[] boxed = new Integer[tokens];
        for (int t = 0; t < tokens; t++) {
            boxed[t] = t;
        }
        // Stable: equal scores keep position order.
        Arrays.sort(boxed, (a, b) -> Float.compare(score[b], score[a]));
        int[] order = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            order[t] = boxed[t];
        }
        return order;
    }
}
