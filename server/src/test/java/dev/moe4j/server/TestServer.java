package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A server on an ephemeral port over a model folder made from the fixtures (the model module's test-jar: a tiny
 * random model transformers saved, its tokenizer; this module's copy of the Mixtral chat template), and a client
 * for it on the JDK's HttpClient, as any OpenAI client would talk to it.
 */
final class TestServer implements AutoCloseable {
    final ServedModel served;
    final ModelServer server;
    private final StringWriter log = new StringWriter();
    private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    private TestServer(Path folder, ModelFolder.Opener opener, ServeLimits limits) {
        this.served = ServedModel.open(folder, null, null, opener, config -> CpuBackend.INSTANCE);
        this.server = ModelServer.start(served, "127.0.0.1", 0, limits, new PrintWriter(log, true));
    }

    /** A server within {@code limits}. */
    static TestServer start(Path folder, ModelFolder.Opener opener, ServeLimits limits) {
        return new TestServer(folder, opener, limits);
    }

    static TestServer start(Path folder) {
        return new TestServer(folder, ModelFolder.Opener.CHECKPOINT, ServeLimits.DEFAULT);
    }

    static TestServer start(Path folder, ModelFolder.Opener opener) {
        return new TestServer(folder, opener, ServeLimits.DEFAULT);
    }

    /** A server decoding at most {@code parallel} requests together. */
    static TestServer start(Path folder, ModelFolder.Opener opener, int parallel) {
        return new TestServer(folder, opener, ServeLimits.DEFAULT.withParallel(parallel));
    }

    /** A server decoding at most {@code parallel} requests together, with at most {@code maxWaiting} waiting. */
    static TestServer start(Path folder, ModelFolder.Opener opener, int parallel, int maxWaiting) {
        return new TestServer(folder, opener, ServeLimits.DEFAULT.withParallel(parallel).withMaxWaiting(maxWaiting));
    }

    /**
     * A model folder for fixture {@code name} (mixtral, deepseek-v3, ...) under {@code into}: config.json,
     * model.safetensors, the fixtures' metaspace tokenizer, and with {@code chat} Mixtral's tokenizer_config.json
     * and generation_config.json.
     */
    static Path modelFolder(String name, Path into, boolean chat) {
        Path folder = into.resolve(name);
        try {
            Files.createDirectories(folder);
            copy("fixtures/" + name + "/config.json", folder.resolve("config.json"));
            copy("fixtures/" + name + "/model.safetensors", folder.resolve("model.safetensors"));
            copy("generate/metaspace-tokenizer.json", folder.resolve("tokenizer.json"));
            if (chat) {
                copy("mixtral/tokenizer_config.json", folder.resolve("tokenizer_config.json"));
                copy("mixtral/generation_config.json", folder.resolve("generation_config.json"));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return folder;
    }

    /** The greedy continuation transformers computed for fixture {@code name}: {prompt, output} ids. */
    static int[][] referenceGreedy(String name) {
        try (InputStream in = stream("fixtures/" + name + "/reference.json")) {
            JsonNode greedy = Json.parse(in.readAllBytes(), name).get("greedy");
            int[] prompt = ints(greedy.get("prompt"));
            int[] all = ints(greedy.get("output"));
            return new int[][] {prompt, java.util.Arrays.copyOfRange(all, prompt.length, all.length)};
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static String idList(int[] ids) {
        return String.join(",", java.util.Arrays.stream(ids).mapToObj(Integer::toString).toList());
    }

    URI uri(String path) {
        return server.uri().resolve(path);
    }

    HttpResponse<String> get(String path) {
        return send(HttpRequest.newBuilder(uri(path)).GET().build());
    }

    HttpResponse<String> post(String path, String json) {
        return send(HttpRequest.newBuilder(uri(path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json)).build());
    }

    HttpResponse<String> send(HttpRequest request) {
        try {
            return client.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** A 200 response's JSON body. */
    static JsonNode ok(HttpResponse<String> response) {
        assertEquals(200, response.statusCode(), response.body());
        assertEquals("application/json", response.headers().firstValue("Content-Type").orElse(""));
        return Json.parse(response.body(), "response");
    }

    /**
     * The events of a Server-Sent Events body in OpenAI's framing, checked: every event is one {@code data: }
     * line followed by a blank line, and the last one is {@code [DONE]}. Returns the JSON events before it.
     */
    static List<JsonNode> events(HttpResponse<String> response) {
        assertEquals(200, response.statusCode(), response.body());
        assertTrue(response.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"),
                response.headers().toString());
        String body = response.body();
        assertTrue(body.endsWith("data: [DONE]\n\n"), "ends with the [DONE] event: " + body);
        var events = new ArrayList<JsonNode>();
        String[] blocks = body.substring(0, body.length() - "data: [DONE]\n\n".length()).split("\n\n", -1);
        assertEquals("", blocks[blocks.length - 1], "every event ends with a blank line");
        for (int i = 0; i < blocks.length - 1; i++) {
            String block = blocks[i];
            assertTrue(block.startsWith("data: ") && !block.contains("\n"), "one data line per event: " + block);
            events.add(Json.parse(block.substring("data: ".length()), "event " + i));
        }
        return events;
    }

    /** A streamed chat reply put together: its content, its tool-call deltas in order, and its finish reason. */
    record StreamedChat(String content, List<JsonNode> toolCalls, String finish) {
    }

    /** The first choice's content, tool calls and finish reason over a stream's {@link #events}. */
    static StreamedChat streamedChat(List<JsonNode> events) {
        var content = new StringBuilder();
        var calls = new ArrayList<JsonNode>();
        String finish = null;
        for (JsonNode e : events) {
            JsonNode choice = e.path("choices").path(0);
            JsonNode delta = choice.path("delta");
            if (delta.hasNonNull("content")) {
                content.append(delta.get("content").asText());
            }
            delta.path("tool_calls").forEach(calls::add);
            if (choice.hasNonNull("finish_reason")) {
                finish = choice.get("finish_reason").asText();
            }
        }
        return new StreamedChat(content.toString(), calls, finish);
    }

    /** What the server logged so far. */
    String log() {
        return log.toString();
    }

    private static void copy(String resource, Path target) throws IOException {
        try (InputStream in = stream(resource)) {
            Files.copy(in, target);
        }
    }

    private static InputStream stream(String resource) {
        InputStream in = TestServer.class.getClassLoader().getResourceAsStream(resource);
        if (in == null) {
            throw new IllegalStateException("missing test resource " + resource);
        }
        return in;
    }

    @Override
    public void close() {
        server.close();
        served.close();
    }

    /**
     * The qwen3-moe fixture as a chat model folder under {@code into} with the tokenizer_config.json of
     * {@code configResource} and {@code markers} made special tokens; its context is raised from 128 to 2048
     * positions, room for a prompt that lists tools (the weights do not care).
     */
    static Path toolsModelFolder(Path into, String configResource, List<String> markers) throws IOException {
        Path folder = modelFolder("qwen3-moe", into, true);
        var config = (com.fasterxml.jackson.databind.node.ObjectNode) Json.read(folder.resolve("config.json"));
        config.put("max_position_embeddings", 2048);
        Files.writeString(folder.resolve("config.json"), Json.pretty(config));
        Files.delete(folder.resolve("tokenizer_config.json")); // Mixtral's, in place of which this one goes
        copy(configResource, folder.resolve("tokenizer_config.json"));
        if (!markers.isEmpty()) {
            withSpecialTokens(folder.resolve("tokenizer.json"), markers);
        }
        return folder;
    }

    /**
     * Makes {@code markers} special tokens of a tokenizer.json in place of its vocabulary's last entries (and the
     * merges that made them): a model's vocabulary size stays, and texts of the tests' prompts keep their tokens.
     */
    static void withSpecialTokens(Path tokenizerJson, List<String> markers) throws IOException {
        var t = (com.fasterxml.jackson.databind.node.ObjectNode) Json.read(tokenizerJson);
        var vocab = (com.fasterxml.jackson.databind.node.ObjectNode) t.get("model").get("vocab");
        var merges = (com.fasterxml.jackson.databind.node.ArrayNode) t.get("model").get("merges");
        var added = (com.fasterxml.jackson.databind.node.ArrayNode) t.get("added_tokens");
        int size = vocab.size();
        for (int i = 0; i < markers.size(); i++) {
            int id = size - markers.size() + i;
            String old = null;
            for (var e : vocab.properties()) {
                if (e.getValue().asInt() == id) {
                    old = e.getKey();
                }
            }
            vocab.remove(old);
            vocab.put(markers.get(i), id);
            for (int m = merges.size() - 1; m >= 0; m--) {
                JsonNode merge = merges.get(m);
                String joined = merge.isArray() ? merge.get(0).asText() + merge.get(1).asText()
                        : merge.asText().replace(" ", "");
                if (joined.equals(old)) {
                    merges.remove(m);
                }
            }
            com.fasterxml.jackson.databind.node.ObjectNode token = added.addObject();
            token.put("id", id);
            token.put("content", markers.get(i));
            token.put("single_word", false);
            token.put("lstrip", false);
            token.put("rstrip", false);
            token.put("normalized", false);
            token.put("special", true);
        }
        Files.writeString(tokenizerJson, Json.compact(t));
    }

}
