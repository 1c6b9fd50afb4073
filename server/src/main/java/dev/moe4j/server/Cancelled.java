package dev.moe4j.server;

/**
 * Ends a generation early, thrown from inside it (a failed write to the client, or a forward pass that finds the
 * client gone or the server closing) and caught by the request that started it.
 */
final class Cancelled extends RuntimeException {
    private final boolean clientLeft;

    private Cancelled(String reason, boolean clientLeft, Throwable cause) {
        super(reason, cause, false, false);
        this.clientLeft = clientLeft;
    }

    /** The client went away: nobody is left to answer. */
    static Cancelled clientLeft(Throwable cause) {
        return new Cancelled("the client went away", true, cause);
    }

    /** The server is closing: the client is answered 503 (or, mid-stream, an error event). */
    static Cancelled closing() {
        return new Cancelled("the server is closing", false, null);
    }

    boolean byClient() {
        return clientLeft;
    }
}
