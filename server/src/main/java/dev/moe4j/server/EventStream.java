package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import dev.moe4j.io.json.Json;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * A response of Server-Sent Events in OpenAI's framing: each event one line {@code data: <json>} and a blank line,
 * the last one {@code data: [DONE]}. The status line and headers go out with the first event, so a request that
 * fails before producing anything still gets a proper error status. A write that fails means the client went away:
 * it becomes {@link Cancelled}, which ends the generation.
 */
final class EventStream {
    private final HttpExchange exchange;
    private OutputStream out;

    EventStream(HttpExchange exchange) {
        this.exchange = exchange;
    }

    /** Sends one event. */
    void send(JsonNode data) {
        write("data: " + Json.compact(data) + "\n\n");
    }

    /** Sends the terminating {@code [DONE]} event. */
    void done() {
        write("data: [DONE]\n\n");
    }

    /** Whether the 200 status and the first event are out (an error can then only travel as an event). */
    boolean started() {
        return out != null;
    }

    private void write(String event) {
        try {
            if (out == null) {
                var headers = exchange.getResponseHeaders();
                headers.set("Content-Type", "text/event-stream; charset=utf-8");
                headers.set("Cache-Control", "no-cache");
                headers.set("X-Accel-Buffering", "no"); // a proxy in front must not hold tokens back
                exchange.sendResponseHeaders(200, 0);
                out = exchange.getResponseBody();
            }
            out.write(event.getBytes(StandardCharsets.UTF_8));
            out.flush();
        } catch (IOException e) {
            throw Cancelled.clientLeft(e);
        }
    }
}
