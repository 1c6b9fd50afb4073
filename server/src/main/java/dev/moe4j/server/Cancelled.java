package dev.moe4j.server;

/**
 * Ends a generation early, thrown from inside it (a failed write to the client, or a forward pass that finds the
 * request cancelled) and caught by the request that started it.
 */
final class Cancelled extends RuntimeException {
    Cancelled(String reason, Throwable cause) {
        super(reason, cause, false, false);
    }
}
