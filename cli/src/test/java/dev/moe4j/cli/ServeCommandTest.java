package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code moe4j serve} as a user starts it: on the real weights of the mixtral fixture, its replies equal what
 * {@code moe4j generate --greedy} and {@code moe4j chat --greedy} print for the same prompt; a bad folder, template
 * or port is the usual one-line error with exit status 2.
 */
class ServeCommandTest {
    @TempDir
    Path dir;

    private final HttpClient client = HttpClient.newHttpClient();

    /** The command running on a thread of its own, until interrupted. */
    private record Running(Thread thread, AtomicInteger status, StringWriter err, URI uri) {
        void stop() throws InterruptedException {
            thread.interrupt();
            thread.join(60_000);
            assertFalse(thread.isAlive(), "serve ends when interrupted");
            assertEquals(0, status.get(), err.toString());
        }
    }

    private Running serve(String... args) throws InterruptedException {
        var err = new StringWriter();
        var status = new AtomicInteger(-1);
        var thread = Thread.ofPlatform().start(() -> status.set(Main.run(args, new PrintWriter(new StringWriter()),
                new PrintWriter(err, true))));
        Pattern listening = Pattern.compile("on (http://\\S+/) ");
        for (int i = 0; i < 3000 && thread.isAlive(); i++) {
            Matcher m = listening.matcher(err.toString());
            if (m.find()) {
                return new Running(thread, status, err, URI.create(m.group(1)));
            }
            Thread.sleep(10);
        }
        thread.join(1000);
        fail("serve did not start: status " + status.get() + ", " + err);
        return null;
    }

    private JsonNode post(URI uri, String json) {
        try {
            var response = client.send(HttpRequest.newBuilder(uri).POST(HttpRequest.BodyPublishers.ofString(json))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, response.statusCode(), response.body());
            return Json.parse(response.body(), "response");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    private Path chatModel() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        Files.copy(Cli.resource("models/mixtral/tokenizer_config.json"), model.resolve("tokenizer_config.json"));
        return model;
    }

    @Test
    void repliesEqualWhatGenerateAndChatPrintForTheSamePrompt() throws Exception {
        Path model = chatModel();
        var generate = Cli.run(Main.DEFAULT_MODELS, "generate", "--model", model.toString(), "--prompt",
                "The capital of France is", "--max-tokens", "10", "--greedy", "--json");
        assertEquals(0, generate.status(), generate.err());
        JsonNode expected = Json.parse(generate.out(), "generate");
        var chat = Cli.run(Main.DEFAULT_MODELS, "Who are you?\n", false, "chat", "--model", model.toString(),
                "--max-tokens", "8", "--greedy");
        assertEquals(0, chat.status(), chat.err());

        Running server = serve("serve", "--model", model.toString(), "--port", "0", "--served-model-name", "tiny");
        try {
            assertTrue(server.err().toString().startsWith("moe4j serve: tiny (mixtral) on http://127.0.0.1:"),
                    server.err().toString());
            JsonNode completion = post(server.uri().resolve("/v1/completions?experts=1"), """
                    {"model": "tiny", "prompt": "The capital of France is", "max_tokens": 10, "temperature": 0}""");
            assertEquals(expected.get("text").asText(), completion.get("choices").get(0).get("text").asText());
            JsonNode tokens = completion.get("moe4j").get("tokens");
            assertEquals(expected.get("output_ids").size(), tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                assertEquals(expected.get("output_ids").get(i).asInt(), tokens.get(i).get("token_id").asInt());
            }
            assertEquals(expected.get("prompt_ids").size(), completion.get("usage").get("prompt_tokens").asInt());

            JsonNode reply = post(server.uri().resolve("/v1/chat/completions"), """
                    {"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 8,
                     "temperature": 0}""");
            assertEquals(chat.out().lines().findFirst().orElseThrow(),
                    reply.get("choices").get(0).get("message").get("content").asText());
        } finally {
            server.stop();
        }
        assertTrue(server.err().toString().contains("POST /v1/chat/completions: "), server.err().toString());
    }

    @Test
    void helpSaysWhatIsServedAndThatRequestsAreBatched() {
        var r = Cli.run(Main.DEFAULT_MODELS, "serve", "--help");
        assertEquals(0, r.status());
        for (String s : new String[] {"--model", "--host", "--port", "--template", "--served-model-name",
                "--max-request-bytes", "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "--parallel", "batched", "\"moe4j\""}) {
            assertTrue(r.out().contains(s), s + " in: " + r.out());
        }
        var top = Cli.run(Main.DEFAULT_MODELS, "--help");
        assertTrue(top.out().contains("serve"), top.out());
    }

    private static String error(Cli.Result r) {
        assertEquals(2, r.status(), r.err());
        assertEquals("", r.out());
        assertTrue(r.err().startsWith("moe4j: error: "), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        return r.err();
    }

    @Test
    void aBadModelFolderTemplateOrPortIsAOneLineErrorWithStatus2() throws IOException {
        assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", dir.resolve("nowhere").toString()))
                .contains("no such folder"));
        Path model = chatModel();
        assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", model.toString(), "--template",
                dir.resolve("missing.jinja").toString())).contains("missing.jinja"));
        try (var taken = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", model.toString(), "--port",
                    Integer.toString(taken.getLocalPort()))).contains("--port"));
        }
        assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", model.toString(), "--port", "70000"))
                .contains("--port"));
        assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", model.toString(), "--kv-cache-size", "lots"))
                .contains("--kv-cache-size: expected a size such as 512m or 8g, got 'lots'"));
        assertTrue(error(Cli.run(Main.DEFAULT_MODELS, "serve", "--model", model.toString(), "--parallel", "0"))
                .contains("--parallel must be at least 1"));
    }
}
