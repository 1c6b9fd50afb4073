package dev.moe4j.train.data;

import java.util.Arrays;
import java.util.List;

/**
 * Token ids laid end to end (documents packed into one stream), remembering where each document starts and
 * what it is called, so that a window of the stream can be traced back to its domain.
 */
public record TokenStream(int[] tokens, int[] documentStarts, List<String> documentNames) {
    public TokenStream {
        if (documentStarts.length != documentNames.size()) {
            throw new IllegalArgumentException(documentStarts.length + " document starts for " + documentNames.size() + " names");
        }
        documentNames = List.copyOf(documentNames);
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
