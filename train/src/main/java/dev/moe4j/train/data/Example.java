package dev.moe4j.train.data;

import dev.moe4j.core.autograd.Graph;

import java.util.Arrays;

/**
 * One training example: a sequence of token ids and, per position, its label as transformers takes
 * {@code labels}: the id the model should produce there (the token itself) or {@link Graph#IGNORE} where nothing is
 * learned (a prompt, a user's turn). Position t's logits are trained toward label t + 1, so the first label never
 * counts.
 *
 * @param name where the example came from ({@code file:line})
 */
public record Example(String name, int[] ids, int[] labels) {
    public Example {
        if (ids.length != labels.length) {
            throw new IllegalArgumentException(name + ": " + ids.length + " ids but " + labels.length + " labels");
        }
    }

    public int length() {
        return ids.length;
    }

    /** Positions whose label the model is trained on: those after the first that are not ignored. */
    public int lossTokens() {
        int n = 0;
        for (int i = 1; i < labels.length; i++) {
            n += labels[i] == Graph.IGNORE ? 0 : 1;
        }
        return n;
    }

    /** The first {@code maxLength} positions (this example when it is not longer). */
    public Example truncated(int maxLength) {
        return ids.length <= maxLength ? this
                : new Example(name, Arrays.copyOf(ids, maxLength), Arrays.copyOf(labels, maxLength));
    }

    /** The ids before the first position that carries a label: what the example gives the model to go on. */
    public int[] prompt() {
        int end = 1;
        while (end < labels.length && labels[end] == Graph.IGNORE) {
            end++;
        }
        return Arrays.copyOf(ids, end);
    }
}
