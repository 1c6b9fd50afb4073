package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.generate.BatchScheduler;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * moe4j's HTTP server: an OpenAI-compatible API over one {@link ServedModel}, on the JDK's built-in server.
 * <ul>
 *   <li>{@code POST /v1/chat/completions}, {@code POST /v1/completions}: generation, streamed as Server-Sent
 *       Events or answered whole ({@link Completions});</li>
 *   <li>{@code GET /v1/models}, {@code GET /v1/models/{id}}, {@code GET /health}, {@code GET /metrics}
 *       (Prometheus: requests, latencies, tokens, and each MoE layer's tokens per expert and imbalance);</li>
 *   <li>{@code GET /}: a page that streams a reply and colours each token by the expert that took it.</li>
 * </ul>
 * Each request runs on its own virtual thread; generations are decoded together by a {@link BatchScheduler} (up to
 * {@code parallel} at once, one batched forward pass per step, the rest waiting their turn), so the page,
 * the health check and the model list answer while a generation runs. Every error is OpenAI's error object with a
 * one-line message; a stack trace never reaches a client.
 */
public final class ModelServer implements AutoCloseable {
    /**
     * The largest request body read unless the server is told otherwise: a conversation filling a context of 128k
     * tokens takes about 0.5 MB of text (2 MB where every character is escaped), and the body is held parsed while
     * it waits, so a few MiB bound what queued requests can hold.
     */
    public static final int DEFAULT_MAX_REQUEST_BYTES = 4 << 20;
    /** Requests decoded together unless the server is told otherwise (llama-server's default slots). */
    public static final int DEFAULT_PARALLEL = 4;
    /**
     * Prompt tokens fed per step in all: a long prompt goes in chunks, so the requests being decoded beside it wait
     * one chunk's pass per token rather than the whole prompt's (vLLM's chunked prefill).
     */
    static final int PREFILL_CHUNK = 512;
    /** Requests that may wait for room before more are answered 503 (each holds its parsed body meanwhile). */
    public static final int DEFAULT_MAX_WAITING = 256;
    /** The most of a refused body read (and dropped) so that its client gets the 413; beyond, the connection ends. */
    private static final long DISCARDED_AT_MOST = 64L << 20;

    private final ServedModel served;
    private final int maxRequestBytes;
    private final HttpServer http;
    private final ExecutorService threads;
    private final PrintWriter log;
    private final BatchScheduler scheduler;
    private final Completions completions;
    private final ServerMetrics metrics;
    private final long created = Instant.now().getEpochSecond();
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile boolean closing;
    /**
     * How long /health answers 503 after a failure inside moe4j: long enough for a load balancer's checks to see it,
     * short enough that the server, which goes on serving, is not left out of rotation for good.
     */
    static final long UNHEALTHY_NANOS = 30_000_000_000L;

    /** A failure inside moe4j: what and where, and when (System.nanoTime()). */
    private record Failure(String what, long at) {
    }

    private volatile Failure lastFailure;

    private ModelServer(ServedModel served, ServeLimits limits, HttpServer http, ExecutorService threads,
                        PrintWriter log) {
        this.served = served;
        this.scheduler = new BatchScheduler(served.folder().model(), limits.parallel(), PREFILL_CHUNK,
                limits.kvCacheBytes());
        this.maxRequestBytes = limits.maxRequestBytes();
        this.http = http;
        this.threads = threads;
        this.log = log;
        served.folder().model().cachePrefixes(limits.prefixCacheBytes());
        this.metrics = new ServerMetrics(scheduler, served.folder().model());
        served.folder().model().countExpertLoads(metrics);
        this.completions = new Completions(served, scheduler, limits, metrics, () -> closing, this::failed);
    }

    /**
     * Starts serving {@code served} on {@code host}:{@code port} (port 0: a free port, see {@link #port()}),
     * refusing request bodies of more than {@code maxRequestBytes} (413) before reading them.
     * {@code log} gets one line per generation and per failed request. A port that cannot be bound is a
     * {@link BadInputException}.
     */
    public static ModelServer start(ServedModel served, String host, int port, int maxRequestBytes, PrintWriter log) {
        return start(served, host, port, ServeLimits.DEFAULT.withMaxRequestBytes(maxRequestBytes), log);
    }

    /**
     * As {@link #start(ServedModel, String, int, int, PrintWriter)} within {@code limits}: requests decoded together,
     * requests waiting before more are answered 503 with Retry-After, and KV cache memory.
     */
    public static ModelServer start(ServedModel served, String host, int port, ServeLimits limits, PrintWriter log) {
        int maxRequestBytes = limits.maxRequestBytes();
        if (port < 0 || port > 65535) {
            throw new BadInputException("--port must be between 0 and 65535, got " + port);
        }
        var address = new InetSocketAddress(host, port);
        if (address.isUnresolved()) {
            throw new BadInputException("--host: cannot resolve '" + host + "'");
        }
        HttpServer http;
        try {
            http = HttpServer.create(address, 64);
        } catch (BindException e) {
            throw new BadInputException("cannot listen on " + host + ":" + port + " (" + e.getMessage()
                    + "): is another server using it? Choose one with --port");
        } catch (IOException e) {
            throw new BadInputException("cannot listen on " + host + ":" + port + ": " + e.getMessage());
        }
        ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
        var server = new ModelServer(served, limits, http, threads, log);
        http.createContext("/", server::handle);
        http.setExecutor(threads);
        http.start();
        return server;
    }

    /** The port the server listens on. */
    public int port() {
        return http.getAddress().getPort();
    }

    /** The server's base address, e.g. {@code http://127.0.0.1:8080/}. */
    public URI uri() {
        var a = http.getAddress();
        String host = a.getAddress().isAnyLocalAddress() ? "127.0.0.1" : a.getAddress().getHostAddress();
        return URI.create("http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort() + "/");
    }

    /** Blocks until {@link #close()} has run. */
    public void awaitClose() throws InterruptedException {
        closed.await();
    }

    /**
     * Stops listening, ends the running generation at its next token, and waits for the requests in flight, so
     * that the model can be closed after this returns. Requests still waiting in the queue are answered 503.
     */
    @Override
    public void close() {
        if (closing) {
            return;
        }
        closing = true;
        http.stop(0);
        // no interrupts: the running generation ends at its next forward pass, and each request still waiting
        // for its turn finds the server closing there too and is answered 503
        threads.shutdown();
        try {
            threads.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        scheduler.close();
        served.folder().model().countExpertLoads(null);
        completions.close();
        closed.countDown();
    }

    private void handle(HttpExchange exchange) {
        String method = exchange.getRequestMethod();
        String path = exchange.getRequestURI().getPath();
        try {
            switch (path) {
                case "/", "/index.html" -> {
                    allow(method, "GET");
                    sendPage(exchange);
                }
                case "/health" -> {
                    allow(method, "GET");
                    sendJson(exchange, recentFailure() == null ? 200 : 503, health());
                }
                case "/metrics" -> {
                    allow(method, "GET");
                    var bytes = new java.io.ByteArrayOutputStream();
                    metrics.write(bytes);
                    exchange.getResponseHeaders().set("Content-Type", metrics.contentType());
                    exchange.sendResponseHeaders(200, bytes.size());
                    try (var out = exchange.getResponseBody()) {
                        bytes.writeTo(out);
                    }
                }
                case "/v1/models" -> {
                    allow(method, "GET");
                    ObjectNode list = Json.mapper().createObjectNode();
                    list.put("object", "list");
                    list.putArray("data").add(modelJson());
                    sendJson(exchange, 200, list);
                }
                case "/v1/chat/completions" -> {
                    allow(method, "POST");
                    generate(exchange, CompletionRequest.Endpoint.CHAT);
                }
                case "/v1/completions" -> {
                    allow(method, "POST");
                    generate(exchange, CompletionRequest.Endpoint.TEXT);
                }
                default -> {
                    if (path.startsWith("/v1/models/")) {
                        allow(method, "GET");
                        String id = path.substring("/v1/models/".length());
                        if (!id.equals(served.name())) {
                            throw new ApiError(404, "the model '" + id + "' is not served here; this server serves '"
                                    + served.name() + "'", ApiError.INVALID_REQUEST, null, "model_not_found").refuse();
                        }
                        sendJson(exchange, 200, modelJson());
                    } else {
                        throw new ApiError(404, "no such endpoint: " + method + " " + path + " (moe4j serves"
                                + " /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics and the page"
                                + " at /)",
                                ApiError.INVALID_REQUEST, null, "not_found").refuse();
                    }
                }
            }
        } catch (ApiError.Refusal r) {
            log(method + " " + path + " " + r.error.status() + ": " + r.error.message());
            if (r.error.status() == 405) {
                exchange.getResponseHeaders().set("Allow", r.error.param());
            }
            if (ApiError.QUEUE_FULL.equals(r.error.code())) {
                exchange.getResponseHeaders().set("Retry-After", "1");
            }
            sendQuietly(exchange, r.error.status(), r.error.toJson());
        } catch (InterruptedException e) {
            sendQuietly(exchange, 503, new ApiError(503, "the server is shutting down", "server_error", null, null)
                    .toJson());
        } catch (IOException e) {
            // reading the request or writing a whole response failed: the client has gone, nobody to answer
            log(method + " " + path + ": the client went away (" + e.getMessage() + ")");
        } catch (Exception | Error e) {
            // A bug, or the JVM out of memory or stack for this request: the log gets the cause and where it was
            // thrown, the client a line that points there, and the server goes on (what failed belonged to this
            // request; the scheduler and the kept caches are left consistent by their own finally blocks).
            var where = e.getStackTrace().length > 0 ? " at " + e.getStackTrace()[0] : "";
            failed(e.toString().lines().findFirst().orElse("") + where);
            log(method + " " + path + " 500: " + e.toString().lines().findFirst().orElse("") + where);
            sendQuietly(exchange, 500, new ApiError(500, "internal error in moe4j serve; its log says where",
                    "server_error", null, null).toJson());
        } finally {
            exchange.close(); // after the error responses above: a try-with-resources would close it before them
        }
    }

    private void generate(HttpExchange exchange, CompletionRequest.Endpoint endpoint) throws Exception {
        JsonNode body = readBody(exchange);
        boolean expertsQuery = queryFlag(exchange.getRequestURI(), "experts");
        var request = CompletionRequest.parse(endpoint, body, expertsQuery, served.name());
        Completions.Outcome outcome;
        try {
            outcome = completions.serve(exchange, request);
        } catch (ApiError.Refusal r) {
            metrics.ended(Completions.label(request), "refused");
            throw r;
        }
        log(exchange.getRequestMethod() + " " + exchange.getRequestURI().getPath() + ": " + outcome.describe()
                + (request.stream() ? ", streamed" : ""));
    }

    private JsonNode readBody(HttpExchange exchange) throws IOException {
        byte[] body;
        try (InputStream in = exchange.getRequestBody()) {
            String declared = exchange.getRequestHeaders().getFirst("Content-Length");
            boolean tooLarge = declared != null && declared.strip().matches("\\d{1,18}")
                    && Long.parseLong(declared.strip()) > maxRequestBytes;
            body = tooLarge ? new byte[0] : in.readNBytes(maxRequestBytes + 1);
            if (tooLarge || body.length > maxRequestBytes) {
                discard(in);
                throw new ApiError(413, "the request body is larger than this server's limit of " + maxRequestBytes
                        + " bytes (moe4j serve --max-request-bytes)", ApiError.INVALID_REQUEST, null,
                        "request_too_large").refuse();
            }
        }
        if (body.length == 0) {
            throw ApiError.invalid(null, "the request body is empty; expected a JSON object").refuse();
        }
        try {
            return Json.parse(body, "the request body");
        } catch (BadInputException e) {
            throw ApiError.invalid(null, e.getMessage()).refuse();
        }
    }

    /**
     * Reads and drops what a client is still sending of a refused body (up to {@link #DISCARDED_AT_MOST}): a
     * connection closed with unread data is reset, and the client would see that instead of the answer.
     */
    private static void discard(InputStream in) throws IOException {
        byte[] sink = new byte[64 << 10];
        long left = DISCARDED_AT_MOST;
        for (int n; left > 0 && (n = in.read(sink, 0, (int) Math.min(sink.length, left))) > 0; ) {
            left -= n;
        }
    }

    /** {@code ?name=1} (or true, yes, on) in the query string. */
    static boolean queryFlag(URI uri, String name) {
        String query = uri.getRawQuery();
        if (query == null) {
            return false;
        }
        for (String pair : query.split("&")) {
            int eq = pair.indexOf('=');
            String key = eq < 0 ? pair : pair.substring(0, eq);
            String value = eq < 0 ? "1" : pair.substring(eq + 1).toLowerCase(Locale.ROOT);
            if (key.equals(name)) {
                return value.equals("1") || value.equals("true") || value.equals("yes") || value.equals("on");
            }
        }
        return false;
    }

    private static void allow(String method, String allowed) {
        if (!method.equals(allowed)) {
            throw new ApiError(405, "use " + allowed + " here, not " + method, ApiError.INVALID_REQUEST, allowed,
                    "method_not_allowed").refuse();
        }
    }

    /** Marks the server unhealthy for {@link #UNHEALTHY_NANOS} after a failure inside moe4j (a bug, no memory). */
    void failed(String what) {
        lastFailure = new Failure(what, System.nanoTime());
    }

    /** The last unexpected failure, if it is recent enough to report. */
    private Failure recentFailure() {
        Failure f = lastFailure;
        return f != null && System.nanoTime() - f.at() < UNHEALTHY_NANOS ? f : null;
    }

    private ObjectNode health() {
        ObjectNode o = Json.mapper().createObjectNode();
        Failure failure = recentFailure();
        o.put("status", failure == null ? "ok" : "unhealthy");
        if (failure != null) {
            o.put("last_failure", failure.what());
        }
        o.put("model", served.name());
        o.put("generating", scheduler.running() > 0);
        o.put("running", scheduler.running());
        o.put("waiting", scheduler.waiting());
        o.put("parallel", scheduler.maxSequences());
        return o;
    }

    /** A model object of OpenAI's list, with what the page and clients need to read the expert extension. */
    private ObjectNode modelJson() {
        var config = served.folder().config();
        ObjectNode m = Json.mapper().createObjectNode();
        m.put("id", served.name());
        m.put("object", "model");
        m.put("created", created);
        m.put("owned_by", "moe4j");
        ObjectNode ext = m.putObject("moe4j");
        ext.put("model_type", config.family());
        ext.put("num_layers", config.numLayers());
        var layers = ext.putArray("moe_layers");
        served.moeLayers().forEach(layers::add);
        ext.put("num_experts", served.numExperts());
        ext.put("experts_per_token", config.moe().map(c -> c.topK()).orElse(0));
        ext.put("context_length", served.contextLength());
        ext.put("chat_template", served.chatTemplate() != null);
        return m;
    }

    private void sendPage(HttpExchange exchange) throws IOException {
        byte[] page;
        try (InputStream in = ModelServer.class.getResourceAsStream("index.html")) {
            if (in == null) {
                throw new IllegalStateException("index.html is missing from the server's resources");
            }
            page = in.readAllBytes();
        }
        exchange.getResponseHeaders().set("Content-Type", "text/html; charset=utf-8");
        exchange.getResponseHeaders().set("Cache-Control", "no-cache");
        exchange.sendResponseHeaders(200, page.length);
        exchange.getResponseBody().write(page);
    }

    /** Sends a JSON response of known length. */
    static void sendJson(HttpExchange exchange, int status, JsonNode body) throws IOException {
        byte[] bytes = Json.compact(body).getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        exchange.getResponseBody().write(bytes);
    }

    private void sendQuietly(HttpExchange exchange, int status, JsonNode body) {
        try {
            sendJson(exchange, status, body);
        } catch (IOException | RuntimeException e) {
            // the client went away, or a response had already begun: nothing more can be said
        }
    }

    private void log(String line) {
        synchronized (log) {
            log.println("moe4j serve: " + line);
            log.flush();
        }
    }
}
