package dev.moe4j.cli;

import java.util.Locale;

/** Numbers as the reports print them: parameter counts in K/M/B, byte sizes in decimal units. */
final class Units {
    private Units() {
    }

    /** 46702792704 -> "46.7B", 3353032704 -> "3.35B", 386368 -> "386.4K". */
    static String count(long n) {
        if (n >= 1_000_000_000L) {
            double b = n / 1e9;
            return String.format(Locale.ROOT, b >= 10 ? "%.1fB" : "%.2fB", b);
        }
        if (n >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.1fM", n / 1e6);
        }
        if (n >= 1_000L) {
            return String.format(Locale.ROOT, "%.1fK", n / 1e3);
        }
        return Long.toString(n);
    }

    /** 1552904 -> "1.6 MB". */
    static String bytes(long n) {
        String[] units = {"kB", "MB", "GB", "TB", "PB"};
        if (n < 1000) {
            return n + " bytes";
        }
        double value = n;
        int unit = -1;
        while (value >= 1000 && unit < units.length - 1) {
            value /= 1000;
            unit++;
        }
        return String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
    }

    /** 1234567 -> "1,234,567". */
    static String exact(long n) {
        return String.format(Locale.ROOT, "%,d", n);
    }

    /** A double as written in a config: 1000000 not 1.0E6, 0.00001 not 1.0E-5. */
    static String number(double d) {
        if (Double.isInfinite(d) || Double.isNaN(d)) {
            return Double.toString(d);
        }
        return new java.math.BigDecimal(Double.toString(d)).stripTrailingZeros().toPlainString();
    }
}
