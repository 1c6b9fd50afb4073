package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.testing.ForwardingModel;
import dev.moe4j.model.testing.ToyModel;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** The server around the generations: model list, health, the page, the queue, disconnects, other models. */
class ServingTest {
    @TempDir
    Path dir;

    /**
     * A model whose forward passes stop, once {@code passes} have run, until the test releases them: the test can
     * then look at the server while a generation is in the middle of its work.
     */
    static final class HeldModel extends ForwardingModel {
        private final int passes;
        private final AtomicInteger calls = new AtomicInteger();
        final CountDownLatch held = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);

        HeldModel(LanguageModel model, int passes) {
            super(model);
            this.passes = passes;
        }

        @Override
        public Tensor forward(List<InferenceState> states, List<int[]> tokens) {
            hold();
            return model.forward(states, tokens);
        }

        @Override
        public Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer) {
            hold();
            return model.forward(state, tokens, lastOnly, observer);
        }

        /** Counts a pass (a step of the scheduler), and holds it once {@code passes} have run. */
        private void hold() {
            if (calls.incrementAndGet() > passes) {
                held.countDown();
                try {
                    assertTrue(release.await(60, TimeUnit.SECONDS), "the test never released the model");
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    /** Waits until {@code condition} holds (a poll with a generous limit, not a measurement). */
    private static void eventually(String what, Supplier<Boolean> condition) throws InterruptedException {
        for (int i = 0; i < 3000 && !condition.get(); i++) {
            Thread.sleep(10);
        }
        assertTrue(condition.get(), what);
    }

    @Test
    void modelsListsTheServedModelWithWhatTheExpertExtensionNeeds() {
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            JsonNode list = TestServer.ok(server.get("/v1/models"));
            assertEquals("list", list.get("object").asText());
            JsonNode m = list.get("data").get(0);
            assertEquals("mixtral", m.get("id").asText(), "the folder's name by default");
            assertEquals("model", m.get("object").asText());
            assertEquals("moe4j", m.get("owned_by").asText());
            JsonNode ext = m.get("moe4j");
            assertEquals("[0,1]", ext.get("moe_layers").toString());
            assertEquals(8, ext.get("num_experts").asInt());
            assertEquals(2, ext.get("experts_per_token").asInt());
            assertEquals(128, ext.get("context_length").asInt());
            assertTrue(ext.get("chat_template").asBoolean());
            assertEquals(m, TestServer.ok(server.get("/v1/models/mixtral")));

            JsonNode health = TestServer.ok(server.get("/health"));
            assertEquals("ok", health.get("status").asText());
            assertFalse(health.get("generating").asBoolean());
            assertEquals(0, health.get("waiting").asInt());
        }
    }

    @Test
    void thePageIsServedAndNeedsNothingFromElsewhere() {
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            HttpResponse<String> page = server.get("/");
            assertEquals(200, page.statusCode());
            assertEquals("text/html; charset=utf-8", page.headers().firstValue("Content-Type").orElse(""));
            String html = page.body();
            assertTrue(html.startsWith("<!DOCTYPE html>") && html.contains("<script>")
                    && html.contains("/v1/chat/completions") && html.contains("moe4j: { experts: true }"), html);
            assertFalse(Pattern.compile("(src|href)\\s*=\\s*[\"']?(https?:)?//").matcher(html).find(),
                    "no script, style or font from another host");
        }
    }

    /**
     * Opens the page in headless Chromium (where one is installed) with a prompt in its address, lets it stream the
     * reply, and reads the DOM back: every generated token is counted in the legend under its first expert of the
     * last MoE layer, and each piece of text wears the colour of the expert of the token that completed it.
     */
    @Test
    void thePageColoursEachTokenByItsExpertInHeadlessChromium() throws Exception {
        Path chromium = HeadlessChromium.find().orElse(null);
        Assumptions.assumeTrue(chromium != null, "no Chromium installed: the page's rendering is not checked");
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            JsonNode expected = TestServer.ok(server.post("/v1/completions", """
                    {"prompt": "The page", "max_tokens": 16, "temperature": 0, "moe4j": {"experts": true}}"""));
            var page = server.uri("/?mode=completion&prompt=The%20page&max_tokens=16&temperature=0&run=1");
            try (var browser = new HeadlessChromium(chromium, dir.resolve("profile"), page)) {
                eventually("the page has streamed the reply", () -> {
                    try {
                        return "done".equals(browser.evaluate("document.body && document.body.dataset.state"));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                assertEquals("", browser.evaluate("document.getElementById('error').textContent"));
                assertEquals(expected.get("choices").get(0).get("text").asText(),
                        browser.evaluate("document.getElementById('output').textContent"));

                // the legend: tokens per expert of layer 1 (the last MoE layer, the page's default)
                var counts = new java.util.TreeMap<Integer, Integer>();
                for (JsonNode t : expected.get("moe4j").get("tokens")) {
                    counts.merge(t.get("experts").get(1).asInt(), 1, Integer::sum);
                }
                var legend = new java.util.TreeMap<Integer, Integer>();
                Matcher item = Pattern.compile("data-expert=\"(\\d+)\">.*?</span>(\\d+): (\\d+)</span>")
                        .matcher(browser.evaluate("document.getElementById('legend').innerHTML"));
                while (item.find()) {
                    legend.put(Integer.parseInt(item.group(2)), Integer.parseInt(item.group(3)));
                }
                assertEquals(counts, legend);

                // each piece of text: coloured by its token's layer-1 expert, one colour per expert
                String output = browser.evaluate("document.getElementById('output').innerHTML");
                Matcher piece = Pattern.compile("<span class=\"piece\" data-token-id=\"(\\d+)\""
                        + " data-experts=\"(\\d+),(\\d+)\"[^>]*style=\"background: (rgb\\([^)]*\\))").matcher(output);
                var colourOf = new java.util.HashMap<Integer, String>();
                int pieces = 0;
                while (piece.find()) {
                    pieces++;
                    int expert = Integer.parseInt(piece.group(3));
                    String previous = colourOf.putIfAbsent(expert, piece.group(4));
                    assertEquals(previous == null ? piece.group(4) : previous, piece.group(4), "expert " + expert);
                }
                assertTrue(pieces > 0, output);
                assertEquals(colourOf.size(), new java.util.HashSet<>(colourOf.values()).size(), "distinct colours");

                // the server panel: each MoE layer's tokens per expert and imbalance as /metrics has them once the
                // page's generation is done (nothing runs after it)
                String metrics = server.get("/metrics").body();
                Matcher generated = Pattern.compile("(?m)^moe4j_generation_tokens_total (\\S+)").matcher(metrics);
                assertTrue(generated.find(), metrics);
                eventually("the panel shows the last figures", () -> {
                    try {
                        return browser.evaluate("document.getElementById('server-layers').dataset.generated")
                                .equals(String.valueOf((long) Double.parseDouble(generated.group(1))));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                String panel = browser.evaluate("document.getElementById('server-layers').innerHTML");
                for (int layer : List.of(0, 1)) {
                    var fromMetrics = new java.util.TreeMap<Integer, Long>();
                    Matcher m = Pattern.compile("moe4j_expert_tokens_total\\{expert=\"(\\d+)\",layer=\"" + layer
                            + "\"} (\\S+)").matcher(metrics);
                    while (m.find()) {
                        long tokens = (long) Double.parseDouble(m.group(2));
                        if (tokens > 0) {
                            fromMetrics.put(Integer.parseInt(m.group(1)), tokens);
                        }
                    }
                    String row = panel.substring(panel.indexOf("data-layer=\"" + layer + "\""));
                    row = row.substring(0, row.indexOf("</div>"));
                    var shown = new java.util.TreeMap<Integer, Long>();
                    Matcher segment = Pattern.compile("data-expert=\"(\\d+)\" data-tokens=\"(\\d+)\"").matcher(row);
                    while (segment.find()) {
                        shown.put(Integer.parseInt(segment.group(1)), Long.parseLong(segment.group(2)));
                    }
                    assertFalse(fromMetrics.isEmpty(), metrics);
                    assertEquals(fromMetrics, shown, "layer " + layer + ": " + row);
                    Matcher imbalance = Pattern.compile("moe4j_expert_imbalance\\{layer=\"" + layer + "\"} (\\S+)")
                            .matcher(metrics);
                    assertTrue(imbalance.find());
                    assertTrue(row.contains(String.format(java.util.Locale.ROOT, "layer %d: %.2f× mean", layer,
                            Double.parseDouble(imbalance.group(1)))), row);
                }
            }
        }
    }

    /** Counts the sequences of each batched step it is asked to run. */
    static final class BatchCounting extends ForwardingModel {
        final AtomicInteger largest = new AtomicInteger();

        BatchCounting(LanguageModel model) {
            super(model);
        }

        @Override
        public Tensor forward(List<InferenceState> states, List<int[]> tokens) {
            largest.accumulateAndGet(states.size(), Math::max);
            return model.forward(states, tokens);
        }
    }

    @Test
    void requestsServedTogetherAnswerWhatEachGetsServedAlone() throws Exception {
        var counting = new ArrayList<BatchCounting>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            counting.add(new BatchCounting(ModelFolder.Opener.CHECKPOINT.open(folder, config, backend)));
            return counting.getLast();
        };
        List<String> bodies = IntStream.range(0, 6).mapToObj(i -> "{\"prompt\": [" + (1 + i) + ", " + (20 + 7 * i)
                + ", 30], \"max_tokens\": " + (5 + i) + ", \"temperature\": 0" + (i % 2 == 0 ? "" : ", \"stream\": true")
                + "}").toList();
        var alone = new ArrayList<String>();
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("a"), true), opener, 1)) {
            for (String body : bodies) {
                alone.add(text(server.post("/v1/completions", body)));
            }
        }
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("b"), true), opener, 4)) {
            var replies = bodies.stream().map(body -> CompletableFuture.supplyAsync(() ->
                    server.post("/v1/completions", body))).toList();
            for (int i = 0; i < bodies.size(); i++) {
                assertEquals(alone.get(i), text(replies.get(i).get(60, TimeUnit.SECONDS)), bodies.get(i));
            }
            assertEquals(4, TestServer.ok(server.get("/health")).get("parallel").asInt());
        }
        assertEquals(1, counting.get(0).largest.get(), "one at a time");
        assertTrue(counting.get(1).largest.get() > 1, "some steps decoded several requests together");
    }

    /** A completion's text, whole or gathered from its stream's chunks. */
    private static String text(HttpResponse<String> response) {
        assertEquals(200, response.statusCode(), response.body());
        if (!response.body().startsWith("data:")) {
            return Json.parse(response.body(), "reply").get("choices").get(0).get("text").asText();
        }
        var out = new StringBuilder();
        for (String line : response.body().split("\n")) {
            if (line.startsWith("data: {")) {
                JsonNode choices = Json.parse(line.substring(6), "chunk").get("choices");
                if (!choices.isEmpty()) {
                    out.append(choices.get(0).get("text").asText());
                }
            }
        }
        return out.toString();
    }

    @Test
    void aRequestThatFindsTheWaitingRoomFullIsAnswered503WithRetryAfter() throws Exception {
        var held = new ArrayList<HeldModel>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            var m = new HeldModel(new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers()), 1);
            held.add(m);
            return m;
        };
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), opener, 1, 1)) {
            String body = "{\"prompt\": [1, 20, 30], \"max_tokens\": 3}";
            var a = CompletableFuture.supplyAsync(() -> server.post("/v1/completions", body));
            assertTrue(held.getFirst().held.await(30, TimeUnit.SECONDS));
            var b = CompletableFuture.supplyAsync(() -> server.post("/v1/completions", body));
            eventually("the second request waits", () ->
                    TestServer.ok(server.get("/health")).get("waiting").asInt() == 1);
            HttpResponse<String> c = server.post("/v1/completions", body);
            assertEquals(503, c.statusCode(), c.body());
            assertEquals("1", c.headers().firstValue("Retry-After").orElse(null));
            assertEquals("queue_full", Json.parse(c.body(), "error").get("error").get("code").asText());
            held.getFirst().release.countDown();
            assertEquals(200, a.get(60, TimeUnit.SECONDS).statusCode());
            assertEquals(200, b.get(60, TimeUnit.SECONDS).statusCode());
        }
    }

    @Test
    void aRequestPastTheTimeLimitIsAnswered504() throws Exception {
        var held = new ArrayList<HeldModel>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            var m = new HeldModel(new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers()), 1);
            held.add(m);
            return m;
        };
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), opener,
                ServeLimits.DEFAULT.withRequestTimeout(0.3))) {
            var reply = CompletableFuture.supplyAsync(() -> server.post("/v1/completions",
                    "{\"prompt\": [1, 20, 30], \"max_tokens\": 50}"));
            assertTrue(held.getFirst().held.await(30, TimeUnit.SECONDS));
            Thread.sleep(500); // past the limit while held
            held.getFirst().release.countDown();
            HttpResponse<String> r = reply.get(60, TimeUnit.SECONDS);
            assertEquals(504, r.statusCode(), r.body());
            assertTrue(r.body().contains("--request-timeout of 0.3 s") && r.body().contains("\"timeout\""), r.body());
            // the next request has its own time
            var next = server.post("/v1/completions", "{\"prompt\": [2, 40], \"max_tokens\": 3}");
            assertEquals(200, next.statusCode(), next.body());
        }
    }

    @Test
    void beyondParallelRequestsWaitInLineWhileHealthAndTheModelListStillAnswer() throws Exception {
        var held = new ArrayList<HeldModel>();
        var toys = new ArrayList<ToyModel>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            toys.add(new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers()));
            var m = new HeldModel(toys.getFirst(), 1);
            held.add(m);
            return m;
        };
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), opener, 1)) {
            HeldModel model = held.getFirst();
            String first = "{\"prompt\": [1, 20, 30], \"max_tokens\": 4}";
            String second = "{\"prompt\": [2, 40], \"max_tokens\": 3}"; // shares nothing with A's cache
            var a = CompletableFuture.supplyAsync(() -> server.post("/v1/completions", first));
            assertTrue(model.held.await(30, TimeUnit.SECONDS));
            var b = CompletableFuture.supplyAsync(() -> server.post("/v1/completions", second));
            eventually("the second request waits its turn", () ->
                    TestServer.ok(server.get("/health")).get("waiting").asInt() == 1);
            JsonNode health = TestServer.ok(server.get("/health"));
            assertTrue(health.get("generating").asBoolean());
            TestServer.ok(server.get("/v1/models"));
            assertFalse(a.isDone() || b.isDone());

            model.release.countDown();
            JsonNode ra = TestServer.ok(a.get(60, TimeUnit.SECONDS));
            JsonNode rb = TestServer.ok(b.get(60, TimeUnit.SECONDS));
            assertEquals(4, ra.get("usage").get("completion_tokens").asInt());
            assertEquals(3, rb.get("usage").get("completion_tokens").asInt());
            // what the model was fed, in order: A's prompt and its tokens, then B's
            List<String> fed = toys.getFirst().fed.stream().map(java.util.Arrays::toString).toList();
            assertEquals(4 + 3, fed.size(), fed.toString());
            assertEquals("[1, 20, 30]", fed.get(0), "first come, first served");
            assertEquals("[2, 40]", fed.get(4), fed.toString());
        }
    }

    @Test
    void aStreamingClientThatDisconnectsStopsItsGeneration() throws Exception {
        var held = new ArrayList<HeldModel>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            // the real weights; held after the prefill and two tokens until the client has gone
            var m = new HeldModel(ModelFolder.Opener.CHECKPOINT.open(folder, config, backend), 3);
            held.add(m);
            return m;
        };
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), opener)) {
            String body = "{\"prompt\": [1, 20, 30], \"max_tokens\": 100, \"temperature\": 0, \"stream\": true}";
            try (var socket = new Socket("127.0.0.1", server.server.port())) {
                OutputStream out = socket.getOutputStream();
                out.write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body)
                        .getBytes(StandardCharsets.UTF_8));
                out.flush();
                assertTrue(held.getFirst().held.await(60, TimeUnit.SECONDS), "the generation started");
            }
            held.getFirst().release.countDown();
            eventually("the server notices the client has gone", () -> server.log().contains("stopped"));
            Matcher m = Pattern.compile("3 prompt \\+ (\\d+) completion tokens \\(stopped: the client went away\\)")
                    .matcher(server.log());
            assertTrue(m.find(), server.log());
            assertTrue(Integer.parseInt(m.group(1)) < 100, "stopped before its budget: " + server.log());
            // and the model is free for the next request, which is fed from what the stopped one left in the cache:
            // its prompt and the tokens it fed, no more (a greedy continuation of them is the fresh one)
            int stoppedAfter = Integer.parseInt(m.group(1));
            var folder = server.served.folder();
            var direct = new Generator(folder.model(), folder.text());
            int[] ids = direct.generate(new int[] {1, 20, 30}, GenerationOptions.greedy(stoppedAfter, Set.of()),
                    GenerationListener.NONE).outputIds();
            int[] next = IntStream.concat(IntStream.concat(IntStream.of(1, 20, 30), IntStream.of(ids)),
                    IntStream.of(7, 8)).toArray();
            JsonNode r = TestServer.ok(server.post("/v1/completions", "{\"prompt\": [" + TestServer.idList(next)
                    + "], \"max_tokens\": 3, \"temperature\": 0}"));
            int cached = r.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt();
            assertEquals(3 + stoppedAfter, cached, "the prompt and the tokens fed before the client went");
            assertEquals(direct.generate(next, GenerationOptions.greedy(3, folder.eosTokenIds()),
                    GenerationListener.NONE).text(), r.get("choices").get(0).get("text").asText());
        }
    }

    @Test
    void aClientThatLeavesBeforeItsWholeAnswerStopsItsGeneration() throws Exception {
        var held = new ArrayList<HeldModel>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            // held after the prefill and two tokens until the client has gone; nothing is written to it before then
            var m = new HeldModel(new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers()), 3);
            held.add(m);
            return m;
        };
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), opener)) {
            String body = "{\"prompt\": [1, 20, 30], \"max_tokens\": 100, \"temperature\": 0}";
            try (var socket = new Socket("127.0.0.1", server.server.port())) {
                OutputStream out = socket.getOutputStream();
                out.write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body)
                        .getBytes(StandardCharsets.UTF_8));
                out.flush();
                assertTrue(held.getFirst().held.await(60, TimeUnit.SECONDS), "the generation started");
            }
            held.getFirst().release.countDown();
            eventually("the server notices the client has gone", () -> server.log().contains("stopped"));
            Matcher m = Pattern.compile("3 prompt \\+ (\\d+) completion tokens \\(stopped: the client went away\\)")
                    .matcher(server.log());
            assertTrue(m.find(), server.log());
            assertTrue(Integer.parseInt(m.group(1)) < 10, "stopped at the next token: " + server.log());
            assertFalse(server.log().contains(" 503"), "nobody was answered: " + server.log());
            // the queue is free for the next request
            JsonNode next = TestServer.ok(server.post("/v1/completions", "{\"prompt\": [2, 40], \"max_tokens\": 3}"));
            assertEquals(3, next.get("usage").get("completion_tokens").asInt());
        }
    }

    @Test
    void anEosIdEndsTheReplyWithFinishReasonStop() {
        ModelFolder.Opener toy = (folder, config, backend) ->
                new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers());
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true), toy)) {
            // the toy goes 368 -> 307 -> 2, and 2 is eos_token_id in generation_config.json
            JsonNode r = TestServer.ok(server.post("/v1/completions", "{\"prompt\": [368], \"max_tokens\": 10}"));
            assertEquals("stop", r.get("choices").get(0).get("finish_reason").asText());
            assertEquals(1, r.get("usage").get("completion_tokens").asInt(), "the EOS id is not part of the reply");
        }
    }

    @Test
    void aModelWithADenseLayerReportsOnlyItsMoeLayersAndContinuesAsTransformers() {
        // deepseek-v3's fixture: layer 0 is dense (first_k_dense_replace), layers 1 and 2 are MoE
        try (var server = TestServer.start(TestServer.modelFolder("deepseek-v3", dir, false))) {
            int[][] reference = TestServer.referenceGreedy("deepseek-v3");
            JsonNode r = TestServer.ok(server.post("/v1/completions", """
                    {"prompt": [%s], "max_tokens": %d, "temperature": 0, "moe4j": {"experts": true}}"""
                    .formatted(TestServer.idList(reference[0]), reference[1].length)));
            JsonNode ext = r.get("moe4j");
            assertEquals("[1,2]", ext.get("layers").toString());
            assertEquals(reference[1].length, ext.get("tokens").size());
            for (int i = 0; i < reference[1].length; i++) {
                JsonNode t = ext.get("tokens").get(i);
                assertEquals(reference[1][i], t.get("token_id").asInt(), "token " + i);
                assertEquals(2, t.get("experts").size());
            }
            assertEquals(Json.parse("[1,2]", "layers"), TestServer.ok(server.get("/v1/models")).get("data").get(0)
                    .get("moe4j").get("moe_layers"));
        }
    }
}
