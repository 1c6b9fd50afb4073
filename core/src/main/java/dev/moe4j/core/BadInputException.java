package dev.moe4j.core;

/**
 * A mistake in what the user gave moe4j (a file, a field, an option), as opposed to a bug in moe4j. The message
 * is one line a person can act on: it names the file or field and says what was expected. The command line
 * prints it without a stack trace and exits with status 2.
 */
public class BadInputException extends RuntimeException {
    public BadInputException(String message) {
        super(message);
    }

    public BadInputException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The most of a library's message (a parser's, a template engine's) that a refusal repeats. */
    static final int LIBRARY_MESSAGE_CHARS = 300;

    /**
     * A library's message for a refusal of one line: line breaks and the blanks around them become one space, and a
     * message that repeats a long stretch of the input is cut after {@value #LIBRARY_MESSAGE_CHARS} characters.
     */
    public static String oneLine(String message) {
        if (message == null) {
            return "unknown error";
        }
        String line = message.replaceAll("\\s*\\R\\s*", " ").trim();
        return line.length() > LIBRARY_MESSAGE_CHARS ? line.substring(0, LIBRARY_MESSAGE_CHARS) + "..." : line;
    }

    /** How much of a quoted value a message shows: a name is recognisable by then, garbage is cut short. */
    static final int QUOTED_CHARS = 80;

    /**
     * A value from the user's input (a tensor or file name, a key) in single quotes for a message: line breaks and
     * other control characters escaped ({@code \n}, {@code \u0000}), so that the message stays one line, and a
     * long value cut after {@value #QUOTED_CHARS} characters.
     */
    public static String quote(String value) {
        var out = new StringBuilder("'");
        int end = Math.min(value.length(), QUOTED_CHARS);
        for (int i = 0; i < end; i++) {
            char c = value.charAt(i);
            switch (c) {
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append(value.length() > end ? "'..." : "'").toString();
    }
}
