package dev.moe4j.train.config;

import dev.moe4j.core.BadInputException;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Typed reading of resolved option values; a value of the wrong form is a one-line error naming the option. */
final class Values {
    private final Map<String, String> values;

    Values(Map<String, String> values) {
        this.values = values;
    }

    String string(String key) {
        TrainSettings.get(key); // a typo in a key here is a bug, not the user's mistake
        String v = values.get(key);
        return v == null ? "" : v.strip();
    }

    int integer(String key, int min) {
        String v = string(key);
        try {
            int i = Integer.parseInt(v);
            if (i < min) {
                throw bad(key, v, "a whole number >= " + min);
            }
            return i;
        } catch (NumberFormatException e) {
            throw bad(key, v, "a whole number");
        }
    }

    double number(String key, double min, double max) {
        String v = string(key);
        try {
            double d = Double.parseDouble(v);
            if (!(d >= min && d <= max)) {
                throw bad(key, v, "a number in [" + min + ", " + max + "]");
            }
            return d;
        } catch (NumberFormatException e) {
            throw bad(key, v, "a number");
        }
    }

    boolean flag(String key) {
        String v = string(key).toLowerCase(Locale.ROOT);
        return switch (v) {
            case "true", "yes", "on", "1" -> true;
            case "false", "no", "off", "0" -> false;
            default -> throw bad(key, v, "true or false");
        };
    }

    /** One of {@code choices} (case-insensitive; '_' and '-' alike); returns it as listed. */
    String choice(String key, String... choices) {
        String v = string(key);
        String norm = v.toLowerCase(Locale.ROOT).replace('_', '-');
        for (String c : choices) {
            if (c.replace('_', '-').equals(norm)) {
                return c;
            }
        }
        throw bad(key, v, "one of " + String.join(", ", choices));
    }

    /** Comma-separated, blanks dropped. */
    List<String> list(String key) {
        return Arrays.stream(string(key).split(",")).map(String::strip).filter(s -> !s.isEmpty()).toList();
    }

    /** "" (none), or a duration such as 90, 90s, 5m, 1.5h. */
    Duration duration(String key) {
        String v = string(key).toLowerCase(Locale.ROOT);
        if (v.isEmpty()) {
            return Duration.ZERO;
        }
        double scale = 1;
        String number = v;
        if (v.endsWith("ms")) {
            scale = 0.001;
            number = v.substring(0, v.length() - 2);
        } else if (v.endsWith("s")) {
            number = v.substring(0, v.length() - 1);
        } else if (v.endsWith("m")) {
            scale = 60;
            number = v.substring(0, v.length() - 1);
        } else if (v.endsWith("h")) {
            scale = 3600;
            number = v.substring(0, v.length() - 1);
        }
        try {
            double seconds = Double.parseDouble(number) * scale;
            if (!(seconds > 0)) {
                throw bad(key, v, "a positive duration such as 90s, 5m or 1h");
            }
            return Duration.ofMillis(Math.round(seconds * 1000));
        } catch (NumberFormatException e) {
            throw bad(key, v, "a duration such as 90s, 5m or 1h");
        }
    }

    static BadInputException bad(String key, String value, String expected) {
        return new BadInputException("--" + key + ": expected " + expected + ", got " + BadInputException.quote(value));
    }
}
