package dev.moe4j.core.testing;

import dev.moe4j.core.BadInputException;

/**
 * The contract of every parser under fuzzing: given any bytes, it succeeds or refuses them with a
 * {@link BadInputException} whose message is one line a person can read. Anything else (another exception, an
 * error, a multi-line or empty message) escapes as a failure, which the fuzzer reports with the input.
 */
public final class CleanRefusal {
    /** Longer than any message that names a file and a field; a message past it is echoing the input. */
    public static final int MAX_MESSAGE_CHARS = 1000;

    private CleanRefusal() {
    }

    @FunctionalInterface
    public interface Parse {
        void run() throws Exception;
    }

    public static void check(Parse parse) throws Exception {
        try {
            parse.run();
        } catch (BadInputException e) {
            requireOneLine(e.getMessage(), e);
        }
    }

    /** A refusal's message: not blank, no line break, at most {@link #MAX_MESSAGE_CHARS}. */
    public static void requireOneLine(String message, Throwable refusal) {
        if (message == null || message.isBlank()) {
            throw new AssertionError("a refusal without a message", refusal);
        }
        if (message.indexOf('\n') >= 0 || message.indexOf('\r') >= 0) {
            throw new AssertionError("a refusal of more than one line: " + message, refusal);
        }
        if (message.length() > MAX_MESSAGE_CHARS) {
            throw new AssertionError("a refusal of " + message.length() + " characters: "
                    + message.substring(0, 200) + "...", refusal);
        }
    }
}
