package dev.moe4j.model.generate;

import java.util.List;

/**
 * Watches generated text for stop strings. Text is released as soon as it cannot be the start of a stop string;
 * a suffix that could still grow into one is held back, so a stop string is never printed, even when it arrives
 * split over several tokens. One per generation.
 */
public final class StopStrings {
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    public StopStrings(List<String> stops) {
        for (String s : stops) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("a stop string must not be empty");
            }
        }
        this.stops = List.copyOf(stops);
    }

    /** Adds new text; returns the text that is now safe to show (possibly empty). */
    public String accept(String text) {
        if (stopped) {
            return "";
        }
        held.append(text);
        int at = firstMatch();
        if (at >= 0) {
            stopped = true;
            String out = held.substring(0, at);
            held.setLength(0);
            return out;
        }
        int keep = longestPrefixSuffix();
        String out = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return out;
    }

    /** Whether a stop string has appeared; nothing after it is ever released. */
    public boolean stopped() {
        return stopped;
    }

    /** At the end of generation: the held-back text, which no stop string completed. */
    public String flush() {
        String out = stopped ? "" : held.toString();
        held.setLength(0);
        return out;
    }

    /** The earliest position where any stop string occurs in the held text, or −1. */
    private int firstMatch() {
        int best = -1;
        for (String s : stops) {
            int at = held.indexOf(s);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
            }
        }
        return best;
    }

    /** The length of the longest suffix of the held text that is a proper prefix of some stop string. */
    private int longestPrefixSuffix() {
        String text = held.toString();
        int best = 0;
        for (String s : stops) {
            int max = Math.min(s.length() - 1, text.length());
            for (int len = max; len > best; len--) {
                if (text.regionMatches(text.length() - len, s, 0, len)) {
                    best = len;
                    break;
                }
            }
        }
        return best;
    }
}
