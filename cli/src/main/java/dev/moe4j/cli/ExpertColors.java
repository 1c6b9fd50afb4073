package dev.moe4j.cli;

import java.util.OptionalInt;
import java.util.TreeSet;

/**
 * Colours text by expert with ANSI 256-colour codes, and lists the experts it used as a legend. The palette holds
 * 24 colours far apart on the 256-colour cube; with more experts they repeat (the legend says which is which).
 */
final class ExpertColors {
    private static final int[] PALETTE = {196, 46, 21, 226, 201, 51, 208, 93, 118, 27, 214, 163, 39, 154, 129, 220,
            33, 199, 82, 57, 45, 202, 171, 112};
    private static final String RESET = "\u001b[0m";

    private final int layer;
    private final boolean enabled;
    private final TreeSet<Integer> used = new TreeSet<>();

    ExpertColors(int layer, boolean enabled) {
        this.layer = layer;
        this.enabled = enabled;
    }

    static String code(int expert) {
        return "\u001b[38;5;" + PALETTE[Math.floorMod(expert, PALETTE.length)] + "m";
    }

    /** {@code text} in the colour of {@code expert} (unchanged without colours or without an expert). */
    String paint(String text, OptionalInt expert) {
        if (!enabled || expert.isEmpty() || text.isEmpty()) {
            return text;
        }
        used.add(expert.getAsInt());
        return code(expert.getAsInt()) + text + RESET;
    }

    /** One line naming each expert that coloured something, in its colour; empty without colours. */
    String legend() {
        if (!enabled || used.isEmpty()) {
            return "";
        }
        var s = new StringBuilder("experts of layer ").append(layer).append(':');
        for (int e : used) {
            s.append(' ').append(code(e)).append("\u2588 ").append(e).append(RESET);
        }
        if (used.last() >= PALETTE.length) {
            s.append("  (colours repeat every ").append(PALETTE.length).append(" experts)");
        }
        return s.toString();
    }
}
