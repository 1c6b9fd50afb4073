package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.testing.ToyModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Requests the server refuses: each gets its HTTP status and OpenAI's error object naming the field at fault, in one
 * line, never a stack trace. The toy model stands in for the weights (errors come before any forward pass).
 */
class ErrorsTest {
    @TempDir
    static Path dir;

    private static TestServer server;

    private static final ModelFolder.Opener TOY = (folder, config, backend) ->
            new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers());

    @BeforeAll
    static void start() {
        server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), TOY);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** A request and what the server must answer: status, the field it names (null: none) and its code. */
    record Refused(String path, String body, int status, String param, String code) {
        @Override
        public String toString() {
            return path + " " + body;
        }
    }

    private static final String CHAT = "/v1/chat/completions";
    private static final String TEXT = "/v1/completions";
    private static final String HI = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
    private static final String LONG_PROMPT = "[" + String.join(",",
            IntStream.range(0, 128).mapToObj(i -> "5").toList()) + "]";

    static final List<Refused> REFUSED = List.of(
            new Refused(CHAT, "this is not json", 400, null, null),
            new Refused(CHAT, "[1, 2]", 400, null, null),
            new Refused(CHAT, "{}", 400, "messages", null),
            new Refused(CHAT, "{\"messages\": []}", 400, "messages", null),
            new Refused(CHAT, "{\"messages\": [{\"content\": \"hi\"}]}", 400, "messages[0].role", null),
            new Refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", 400, "messages[0].content", null),
            new Refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", 400,
                    "messages[0].content", "unsupported"),
            new Refused(CHAT, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}", 400, "messages", null),
            new Refused(CHAT, "{" + HI + ", \"n\": 17}", 400, "n", null),
            new Refused(CHAT, "{" + HI + ", \"temperature\": \"hot\"}", 400, "temperature", null),
            new Refused(CHAT, "{" + HI + ", \"temperature\": -1}", 400, "temperature", null),
            new Refused(CHAT, "{" + HI + ", \"top_p\": 0}", 400, "top_p", null),
            new Refused(CHAT, "{" + HI + ", \"top_k\": -2}", 400, "top_k", null),
            new Refused(CHAT, "{" + HI + ", \"min_p\": 1.5}", 400, "min_p", null),
            new Refused(CHAT, "{" + HI + ", \"repetition_penalty\": 0}", 400, "repetition_penalty", null),
            new Refused(CHAT, "{" + HI + ", \"max_tokens\": 0}", 400, "max_tokens", null),
            new Refused(CHAT, "{" + HI + ", \"max_completion_tokens\": 2.5}", 400, "max_completion_tokens", null),
            new Refused(CHAT, "{" + HI + ", \"seed\": \"x\"}", 400, "seed", null),
            new Refused(CHAT, "{" + HI + ", \"stop\": \"\"}", 400, "stop", null),
            new Refused(CHAT, "{" + HI + ", \"stop\": [\"a\", 1]}", 400, "stop", null),
            new Refused(CHAT, "{" + HI + ", \"stream\": \"yes\"}", 400, "stream", null),
            new Refused(CHAT, "{" + HI + ", \"stream_options\": {\"include_usage\": true}}", 400, "stream_options",
                    null),
            new Refused(CHAT, "{" + HI + ", \"logprobs\": true, \"top_logprobs\": 21}", 400, "top_logprobs", null),
            new Refused(CHAT, "{" + HI + ", \"frequency_penalty\": 2.5}", 400, "frequency_penalty", null),
            new Refused(CHAT, "{" + HI + ", \"tools\": [{\"type\": \"function\"}]}", 400, "tools[0]", null),
            // a well-formed tool, but Mixtral's template has no tool-call format moe4j reads
            new Refused(CHAT, "{" + HI + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
                    400, "tools", "unsupported"),
            new Refused(CHAT, "{" + HI + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\":"
                    + " {\"schema\": {\"type\": \"string\", \"format\": \"uuid\"}}}}", 400,
                    "response_format.json_schema.schema", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"experts\": \"yes\"}}", 400, "moe4j.experts", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"colours\": true}}", 400, "moe4j.colours", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": 1}}", 400, "moe4j.routing", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"experts\": 1}}}", 400,
                    "moe4j.routing.experts", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"experts_per_token\": 0}}}", 400,
                    "moe4j.routing.experts_per_token", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"expert_top_p\": 1.5}}}", 400,
                    "moe4j.routing.expert_top_p", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"expert_mask\": \"x\"}}}", 400,
                    "moe4j.routing", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"expert_mask\": {\"1\": [\"a\"]}}}}", 400,
                    "moe4j.routing.expert_mask", null),
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"expert_top_p\": 0.5, \"experts_per_token\": 1}}}",
                    400, "moe4j.routing", null),
            // checked against the model: the toy model has no MoE layers
            new Refused(CHAT, "{" + HI + ", \"moe4j\": {\"routing\": {\"experts_per_token\": 1}}}", 400,
                    "moe4j.routing", null),
            new Refused(CHAT, "{" + HI + ", \"model\": \"gpt-4o\"}", 404, "model", "model_not_found"),
            new Refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"" + "word ".repeat(200) + "\"}]}",
                    400, "messages", "context_length_exceeded"),
            new Refused(TEXT, "{\"prompt\": [1, 5], \"max_tokens\": 127}", 400, "max_tokens",
                    "context_length_exceeded"),
            new Refused(CHAT, "{" + HI + ", \"max_completion_tokens\": 1000000, \"max_tokens\": 1}", 400,
                    "max_completion_tokens", "context_length_exceeded"),
            new Refused(TEXT, "{}", 400, "prompt", null),
            new Refused(TEXT, "{\"prompt\": []}", 400, "prompt", null),
            new Refused(TEXT, "{\"prompt\": [\"one\", \"two\"]}", 400, "prompt", null),
            new Refused(TEXT, "{\"prompt\": [1, -2]}", 400, "prompt", null),
            new Refused(TEXT, "{\"prompt\": [1, 512]}", 400, "prompt", null),
            new Refused(TEXT, "{\"prompt\": " + LONG_PROMPT + "}", 400, "prompt", "context_length_exceeded"),
            new Refused(TEXT, "{\"prompt\": \"a\", \"echo\": true}", 400, "echo", "unsupported"),
            new Refused(TEXT, "{\"prompt\": \"a\", \"best_of\": 2}", 400, "best_of", null),
            new Refused(TEXT, "{\"prompt\": \"a\", \"suffix\": \"b\"}", 400, "suffix", "unsupported"),
            new Refused(TEXT, "{\"prompt\": \"a\", \"logprobs\": 6}", 400, "logprobs", null));

    /** The error object of a refused request, checked for OpenAI's shape and a one-line message. */
    private static JsonNode error(HttpResponse<String> response, int status) {
        assertEquals(status, response.statusCode(), response.body());
        assertEquals("application/json", response.headers().firstValue("Content-Type").orElse(""));
        JsonNode body = Json.parse(response.body(), "error response");
        assertEquals(Set.of("error"), Set.copyOf(iterable(body)), response.body());
        JsonNode error = body.get("error");
        assertEquals(Set.of("message", "type", "param", "code"), Set.copyOf(iterable(error)));
        String message = error.get("message").asText();
        assertFalse(message.isBlank());
        assertFalse(message.contains("\n"), "one line: " + message);
        assertFalse(message.contains("Exception") || message.contains("\tat "), "no stack trace: " + message);
        assertEquals(status >= 500 ? "server_error" : "invalid_request_error", error.get("type").asText());
        return error;
    }

    private static List<String> iterable(JsonNode object) {
        var names = new java.util.ArrayList<String>();
        object.fieldNames().forEachRemaining(names::add);
        return names;
    }

    @ParameterizedTest
    @FieldSource("REFUSED")
    void aBadRequestGetsOpenAisErrorObjectNamingTheField(Refused r) {
        JsonNode error = error(server.post(r.path(), r.body()), r.status());
        assertEquals(r.param(), error.get("param").textValue(), error.toString());
        assertEquals(r.code(), error.get("code").textValue(), error.toString());
    }

    @Test
    void aPromptTooLongForTheContextSaysSoInNumbers() {
        JsonNode error = error(server.post(TEXT, "{\"prompt\": " + LONG_PROMPT + "}"), 400);
        assertEquals("the prompt has 128 tokens, which leaves no room for a reply in this model's context of 128"
                + " tokens", error.get("message").asText());
    }

    @Test
    void aTokenBudgetBeyondTheContextIsRefusedInNumbersWhileADefaultOneIsCutToTheRoomLeft() {
        JsonNode error = error(server.post(TEXT, "{\"prompt\": [1, 5], \"max_tokens\": 127}"), 400);
        assertEquals("max_tokens is 127, but the prompt has 2 tokens and this model's context holds 128: at most 126"
                + " tokens can follow it", error.get("message").asText());
        JsonNode fits = TestServer.ok(server.post(TEXT, "{\"prompt\": [1, 5], \"max_tokens\": 126}"));
        assertTrue(fits.get("usage").get("total_tokens").asInt() <= 128, fits.toString());
        // no max_tokens: the default of 256 (the fixture's generation_config.json sets none) ends with the context
        JsonNode cut = TestServer.ok(server.post(TEXT, "{\"prompt\": [1, 5]}"));
        assertTrue(cut.get("usage").get("total_tokens").asInt() <= 128, cut.toString());
    }

    @Test
    void aPromptFarLongerThanTheContextIsRefusedOnItsStart() {
        // 128 tokens of context: the first 2048 characters (16 a token) are tokenised, not the 500,000
        String text = "word ".repeat(100_000);
        JsonNode error = error(server.post(TEXT, "{\"prompt\": \"" + text + "\"}"), 400);
        assertEquals("context_length_exceeded", error.get("code").asText());
        assertTrue(error.get("message").asText().startsWith("the prompt has 500000 characters and its first 2044"
                + " alone are "), error.get("message").asText());
        JsonNode chat = error(server.post(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"" + text
                + "\"}]}"), 400);
        assertEquals("messages", chat.get("param").asText());
        assertTrue(chat.get("message").asText().contains(" alone are "), chat.toString());
    }

    @Test
    void aBodyOverTheServersLimitIs413WhetherItsLengthIsDeclaredOrNot() {
        byte[] big = ("{\"prompt\": \"" + "a".repeat(ModelServer.DEFAULT_MAX_REQUEST_BYTES) + "\"}")
                .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        JsonNode declared = error(server.send(HttpRequest.newBuilder(server.uri(TEXT))
                .POST(HttpRequest.BodyPublishers.ofByteArray(big)).build()), 413);
        assertEquals("request_too_large", declared.get("code").asText());
        assertTrue(declared.get("message").asText().contains("--max-request-bytes"), declared.toString());
        // chunked: no Content-Length to go by
        error(server.send(HttpRequest.newBuilder(server.uri(TEXT)).POST(HttpRequest.BodyPublishers.ofInputStream(
                () -> new java.io.ByteArrayInputStream(big))).build()), 413);
        assertEquals("ok", TestServer.ok(server.get("/health")).get("status").asText());
    }

    @Test
    void theRequestSizeLimitIsTheServers() {
        String small = "{\"prompt\": [1, 5], \"max_tokens\": 2}";
        String large = "{\"prompt\": [1, 5], \"max_tokens\": 2, \"user\": \"" + "x".repeat(1000) + "\"}";
        try (var limited = ModelServer.start(server.served, "127.0.0.1", 0, 1000,
                new java.io.PrintWriter(java.io.Writer.nullWriter()))) {
            var client = java.net.http.HttpClient.newHttpClient();
            java.util.function.Function<String, HttpResponse<String>> post = body -> {
                try {
                    return client.send(HttpRequest.newBuilder(limited.uri().resolve(TEXT))
                            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
            TestServer.ok(post.apply(small));
            assertTrue(error(post.apply(large), 413).get("message").asText().contains("limit of 1000 bytes"));
            TestServer.ok(server.post(TEXT, large));
        }
        assertThrows(BadInputException.class, () -> ModelServer.start(server.served, "127.0.0.1", 0, 0,
                new java.io.PrintWriter(java.io.Writer.nullWriter())));
    }

    @Test
    void aConversationTheTemplateRefusesGetsTheTemplatesReason() {
        JsonNode error = error(server.post(CHAT, "{\"messages\": [{\"role\": \"tool\", \"content\": \"hi\"}]}"), 400);
        assertTrue(error.get("message").asText().contains("refused the conversation"), error.toString());
    }

    @Test
    void unknownPathsAndWrongMethodsAreRefusedInTheSameShape() {
        assertEquals("not_found", error(server.get("/v1/embeddings"), 404).get("code").asText());
        assertEquals("model_not_found", error(server.get("/v1/models/other"), 404).get("code").asText());
        HttpResponse<String> get = server.get(CHAT);
        assertEquals("method_not_allowed", error(get, 405).get("code").asText());
        assertEquals("POST", get.headers().firstValue("Allow").orElse(""));
        error(server.send(HttpRequest.newBuilder(server.uri("/health"))
                .POST(HttpRequest.BodyPublishers.ofString("{}")).build()), 405);
    }

    @Test
    void aModelWithoutChatTemplateRefusesChatSayingHowToGiveOne() {
        try (var plain = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("plain"), false), TOY)) {
            JsonNode error = error(plain.post(CHAT, "{" + HI + "}"), 400);
            assertTrue(error.get("message").asText().contains("--template FILE"), error.toString());
            TestServer.ok(plain.post(TEXT, "{\"prompt\": [1, 5], \"max_tokens\": 2}"));
        }
    }

    /** The toy model, except that its forward passes throw what the test queues, one per pass (null: none). */
    static final class FailingModel extends ToyModel {
        final java.util.LinkedList<Throwable> failures = new java.util.LinkedList<>();

        FailingModel(dev.moe4j.model.config.ModelConfig config) {
            super(config.vocabSize(), config.maxPositions(), config.numLayers());
        }

        @Override
        public dev.moe4j.core.Tensor forward(dev.moe4j.model.InferenceState state, int[] tokens, boolean lastOnly,
                                             dev.moe4j.model.ForwardObserver observer) {
            Throwable failure = failures.poll();
            if (failure instanceof RuntimeException r) {
                throw r;
            }
            if (failure instanceof Error e) {
                throw e;
            }
            return super.forward(state, tokens, lastOnly, observer);
        }
    }

    @Test
    void anUnexpectedFailureIsAnswered500WithAnErrorObjectAndServingGoesOn() {
        var models = new java.util.ArrayList<FailingModel>();
        ModelFolder.Opener failing = (folder, config, backend) -> {
            models.add(new FailingModel(config));
            return models.getLast();
        };
        try (var s = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("failing"), true), failing)) {
            var model = models.getFirst();
            String body = "{\"prompt\": [1, 5], \"max_tokens\": 2}";
            for (Throwable failure : List.<Throwable>of(new StackOverflowError(), new AssertionError("a bug"),
                    new OutOfMemoryError("Java heap space"), new IllegalStateException("a bug"))) {
                model.failures.add(failure);
                error(s.post(TEXT, body), 500);
                var health = s.get("/health");
                assertEquals(503, health.statusCode(), "a failure inside moe4j marks the server unhealthy for a while");
                assertEquals("unhealthy", Json.parse(health.body(), "health").get("status").asText());
                assertTrue(Json.parse(health.body(), "health").get("last_failure").asText()
                        .contains(failure.getClass().getName()), health.body());
                assertTrue(s.log().contains("500: " + failure.getClass().getName()), s.log());
            }
            assertEquals(2, TestServer.ok(s.post(TEXT, body)).get("usage").get("completion_tokens").asInt());
            // a stream that fails after its first tokens ends with an error event
            model.failures.addAll(java.util.Arrays.asList(null, null, new AssertionError("a bug mid-stream")));
            var stream = s.post(TEXT, "{\"prompt\": [400], \"max_tokens\": 8, \"stream\": true}");
            assertEquals(200, stream.statusCode());
            assertTrue(stream.body().contains("\"type\":\"server_error\""), stream.body());
            assertEquals(2, TestServer.ok(s.post(TEXT, body)).get("usage").get("completion_tokens").asInt());
        }
    }

    @Test
    void aChatTemplateWithASyntaxErrorStopsTheServerFromStartingNamingItsFile() throws java.io.IOException {
        Path folder = TestServer.modelFolder("mixtral", dir.resolve("broken-template"), true);
        Path config = folder.resolve("tokenizer_config.json");
        java.nio.file.Files.writeString(config, "{\"chat_template\": \"{% for m in messages %}{{ m.content }}\"}");
        var e = assertThrows(BadInputException.class,
                () -> ServedModel.open(folder, null, null, TOY, config1 -> CpuBackend.INSTANCE));
        assertTrue(e.getMessage().startsWith("chat template of " + config + ": ")
                && e.getMessage().contains("Missing end tag: endfor"), e.getMessage());
    }

    @Test
    void aBadModelFolderOrTemplateOrPortIsABadInputError() {
        var missing = assertThrows(BadInputException.class,
                () -> ServedModel.open(dir.resolve("nowhere"), null, null, TOY, config -> CpuBackend.INSTANCE));
        assertTrue(missing.getMessage().contains("no such folder"), missing.getMessage());
        Path folder = server.served.folder().folder();
        var template = assertThrows(BadInputException.class,
                () -> ServedModel.open(folder, dir.resolve("missing.jinja"), null, TOY,
                        config -> CpuBackend.INSTANCE));
        assertTrue(template.getMessage().contains("cannot read the chat template"), template.getMessage());
        var port = assertThrows(BadInputException.class, () -> ModelServer.start(server.served, "127.0.0.1",
                server.server.port(), ModelServer.DEFAULT_MAX_REQUEST_BYTES,
                new java.io.PrintWriter(java.io.Writer.nullWriter())));
        assertTrue(port.getMessage().contains("--port"), port.getMessage());
    }
}
