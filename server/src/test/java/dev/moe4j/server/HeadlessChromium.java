package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A headless Chromium showing one page, asked for values through the DevTools protocol (a WebSocket, JDK's
 * client). Chromium's --dump-dom cannot wait for a streamed response: its virtual time runs on while a fetch's body
 * is still arriving, so the page's state is read here instead, as often as the test needs.
 */
final class HeadlessChromium implements AutoCloseable {
    private final Process process;
    private final WebSocket socket;
    private final AtomicInteger ids = new AtomicInteger();
    private final Map<Integer, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();

    /** The Chromium of this machine, if there is one. */
    static Optional<Path> find() {
        return List.of(Path.of("/usr/bin/chromium"), Path.of("/usr/bin/chromium-browser"),
                Path.of("/usr/bin/google-chrome")).stream().filter(Files::isExecutable).findFirst();
    }

    HeadlessChromium(Path binary, Path profile, URI page) throws Exception {
        process = new ProcessBuilder(binary.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + profile,
                "--remote-debugging-port=0", page.toString())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        try {
            socket = connect();
        } catch (Exception e) {
            process.destroyForcibly();
            throw e;
        }
    }

    private WebSocket connect() throws Exception {
        URI browser = null;
        var err = new BufferedReader(new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8));
        for (String line; (line = err.readLine()) != null; ) {
            if (line.startsWith("DevTools listening on ")) {
                browser = URI.create(line.substring("DevTools listening on ".length()).trim());
                break;
            }
        }
        if (browser == null) {
            throw new IllegalStateException("chromium did not open its DevTools port");
        }
        Thread.ofVirtual().start(() -> err.lines().forEach(line -> { })); // keep its stderr drained
        var http = HttpClient.newHttpClient();
        URI list = URI.create("http://" + browser.getAuthority() + "/json/list");
        String target = null;
        for (int i = 0; i < 100 && target == null; i++) {
            for (JsonNode t : Json.parse(http.send(HttpRequest.newBuilder(list).build(),
                    HttpResponse.BodyHandlers.ofString()).body(), "targets")) {
                if (t.path("type").asText().equals("page")) {
                    target = t.get("webSocketDebuggerUrl").asText();
                }
            }
            if (target == null) {
                Thread.sleep(50);
            }
        }
        if (target == null) {
            throw new IllegalStateException("chromium shows no page");
        }
        return http.newWebSocketBuilder().buildAsync(URI.create(target), new Replies()).get(30, TimeUnit.SECONDS);
    }

    /** The value of a JavaScript expression in the page, as a string (null when undefined). */
    String evaluate(String expression) throws Exception {
        int id = ids.incrementAndGet();
        ObjectNode call = Json.mapper().createObjectNode();
        call.put("id", id);
        call.put("method", "Runtime.evaluate");
        call.putObject("params").put("expression", expression).put("returnByValue", true);
        var reply = new CompletableFuture<JsonNode>();
        pending.put(id, reply);
        socket.sendText(Json.compact(call), true).get(30, TimeUnit.SECONDS);
        JsonNode result = reply.get(30, TimeUnit.SECONDS).path("result").path("result");
        return result.has("value") ? result.get("value").asText() : null;
    }

    /** Collects the protocol's replies, which may arrive in several frames each. */
    private final class Replies implements WebSocket.Listener {
        private final StringBuilder text = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            text.append(data);
            if (last) {
                JsonNode message = Json.parse(text.toString(), "devtools message");
                text.setLength(0);
                var reply = message.has("id") ? pending.remove(message.get("id").asInt()) : null;
                if (reply != null) {
                    reply.complete(message);
                }
            }
            webSocket.request(1);
            return null;
        }
    }

    @Override
    public void close() throws IOException {
        if (socket != null) {
            socket.abort();
        }
        // Chromium's helper processes (renderer, GPU, zygote) may outlive the browser for a moment and write to the
        // profile folder while the test deletes it: they are taken now, while they are still its descendants, and
        // waited for too.
        var helpers = process.descendants().toList();
        process.destroy();
        helpers.forEach(ProcessHandle::destroy);
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
            for (ProcessHandle helper : helpers) {
                try {
                    helper.onExit().get(10, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                    helper.destroyForcibly();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
