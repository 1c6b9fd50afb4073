package dev.moe4j.moe.dispatch;

import java.util.Arrays;

/**
 * The assignments of tokens to experts that survived capacity, grouped by expert: rows
 * {@code offsets[e] .. offsets[e+1]} go to expert e, in the order they were served (their slot order). Row r
 * carries token {@code token[r]} with combine weight {@code weight[r]}. Experts run on the permuted rows as one
 * grouped matmul; the combine step scatters {@code weight · output} back to the tokens.
 */
public record Dispatch(int tokens, int experts, int[] offsets, int[] token, float[] weight) {
    public Dispatch {
        if (offsets.length != experts + 1 || offsets[0] != 0 || offsets[experts] != token.length
                || weight.length != token.length) {
            throw new IllegalArgumentException("inconsistent dispatch: offsets " + Arrays.toString(offsets)
                    + " for " + token.length + " rows");
        }
    }

    /** Number of assignments (rows of the permuted expert input). */
    public int rows() {
        return token.length;
    }

    /** Tokens given to expert e. */
    public int load(int e) {
        return offsets[e + 1] - offsets[e];
    }

    /** The expert of every row, in row order. */
    public int[] expertOfRows() {
        int[] out = new int[rows()];
        for (int e = 0; e < experts; e++) {
            Arrays.fill(out, offsets[e], offsets[e + 1], e);
        }
        return out;
    }

    /**
     * Groups (token, expert, weight) triples, given in service order, by expert while keeping that order within
     * each expert.
     */
    public static Dispatch group(int tokens, int experts, int count, int[] token, int[] expert, float[] weight) {
        int[] offsets = new int[experts + 1];
        for (int i = 0; i < count; i++) {
            offsets[expert[i] + 1]++;
        }
        for (int e = 0; e < experts; e++) {
            offsets[e + 1] += offsets[e];
        }
        int[] fill = Arrays.copyOf(offsets, experts);
        int[] t = new int[count];
        float[] w = new float[count];
        for (int i = 0; i < count; i++) {
            int r = fill[expert[i]]++;
            t[r] = token[i];
            w[r] = weight[i];
        }
        return new Dispatch(tokens, experts, offsets, t, w);
    }
}
