package dev.moe4j.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;

/**
 * A request the server refuses: the HTTP status and OpenAI's error object ({@code {"error": {"message", "type",
 * "param", "code"}}}), which OpenAI's client libraries turn into their exceptions. The message is one line a person
 * can act on; no stack trace ever reaches a client.
 *
 * @param param the request field at fault, or null
 * @param code  a machine-readable reason where OpenAI defines one (context_length_exceeded, model_not_found), or null
 */
record ApiError(int status, String message, String type, String param, String code) {
    /** The code of a 503 sent when too many requests wait: the client is told to retry (Retry-After). */
    static final String QUEUE_FULL = "queue_full";

    static final String INVALID_REQUEST = "invalid_request_error";

    /** 400: a field is missing, of the wrong type or out of range. */
    static ApiError invalid(String param, String message) {
        return new ApiError(400, message, INVALID_REQUEST, param, null);
    }

    /** 400: something OpenAI's API has that moe4j does not do; saying so beats ignoring it. */
    static ApiError unsupported(String param, String what) {
        return new ApiError(400, what + " is not supported by moe4j serve", INVALID_REQUEST, param, "unsupported");
    }

    /** The body of the error response. */
    ObjectNode toJson() {
        ObjectNode root = Json.mapper().createObjectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", message);
        error.put("type", type);
        error.put("param", param);
        error.put("code", code);
        return root;
    }

    /** The error as an exception, to leave a request's handling from wherever it is found. */
    Refusal refuse() {
        return new Refusal(this);
    }

    /** Carries an {@link ApiError} out of request handling. */
    static final class Refusal extends RuntimeException {
        final ApiError error;

        Refusal(ApiError error) {
            super(error.message(), null, false, false);
            this.error = error;
        }
    }
}
