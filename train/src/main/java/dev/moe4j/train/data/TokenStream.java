package dev.moe4j.train.data;

import java.util.Arrays;
import java.util.List;

/**
 * Token ids laid end to end (documents packed into one stream), remembering where each document starts and
 * what it is called, so that a window of the stream can be traced back to its domain.
 *
 * @param labels null when every token is a target; else, per token, the token itself where it counts in the loss
 *               and {@link dev.moe4j.core.autograd.Graph#IGNORE} where it does not (packed examples with loss masks)
 */
public record TokenStream(int[] tokens, int[] documentStarts, List<String> documentNames, int[] labels) {
    public TokenStream {
        if (documentStarts.length != documentNames.size()) {
            throw new IllegalArgumentException(documentStarts.length + " document starts for " + documentNames.size() + " names");
        }
        if (labels != null && labels.length != tokens.length) {
            throw new IllegalArgumentException(labels.length + " labels for " + tokens.length + " tokens");
        }
        documentNames = List.copyOf(documentNames);
    }

    public TokenStream(int[] tokens, int[] documentStarts, List<String> documentNames) {
        this(tokens, documentStarts, documentNames, null);
    }

    public int length() {
        return tokens.length;
    }

    /** The name of the document that holds token {@code index}. */
    public String documentAt(int index) {
        int i = Arrays.binarySearch(documentStarts, index);
        return documentNames.get(i >= 0 ? i : -i - 2);
    }
}
