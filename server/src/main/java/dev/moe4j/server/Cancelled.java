package dev.moe4j.server;

/**
 * Ends a generation early, thrown from inside it (a failed write to the client, or a forward pass that finds the
 * client gone or the server closing) and caught by the request that started it.
 */
final class Cancelled extends RuntimeException {
    private final boolean clientLeft;
    private final int status;

    private Cancelled(String reason, boolean clientLeft, int status, Throwable cause) {
        super(reason, cause, false, false);
        this.clientLeft = clientLeft;
        this.status = status;
    }

    /** The client went away: nobody is left to answer. */
    static Cancelled clientLeft(Throwable cause) {
        return new Cancelled("the client went away", true, 0, cause);
    }

    /** The server is closing: the client is answered 503 (or, mid-stream, an error event). */
    static Cancelled closing() {
        return new Cancelled("the server is closing", false, 503, null);
    }

    /** The request ran past the server's time limit: the client is answered 504 (or, mid-stream, an error event). */
    static Cancelled timedOut(double seconds) {
        return new Cancelled("the request ran past the server's --request-timeout of " + seconds + " s", false, 504,
                null);
    }

    /** The HTTP status the client is answered with (none when it left). */
    int status() {
        return status;
    }

    boolean byClient() {
        return clientLeft;
    }
}
