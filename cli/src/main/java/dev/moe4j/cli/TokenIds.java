package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;

/** Token ids given on the command line as a comma-separated list ("1,2,3"). */
final class TokenIds {
    private TokenIds() {
    }

    static int[] parse(String option, String list) {
        String[] parts = list.split(",", -1);
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new BadInputException(option + ": expected comma-separated token ids like 1,2,3; '" + parts[i]
                        + "' is not an id");
            }
            if (ids[i] < 0) {
                throw new BadInputException(option + ": token ids are not negative, got " + ids[i]);
            }
        }
        return ids;
    }

    static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
