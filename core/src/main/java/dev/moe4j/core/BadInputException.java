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
}
