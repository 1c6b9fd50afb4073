package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The {@code moe4j.routing} extension on the Mixtral fixture (8 experts, top-2): a request routed by a policy gets
 * what the Java API generates with it, requests of different policies decoded together get what each gets alone, the
 * server's own policy applies to requests without one, and what the model cannot follow is a 400 naming the field.
 */
class RoutingExtensionTest {
    @TempDir
    Path dir;

    private static final int[] PROMPT = {1, 20, 30};

    private static String body(String routing) {
        return "{\"prompt\": [1, 20, 30], \"max_tokens\": 6, \"temperature\": 0"
                + (routing == null ? "" : ", \"moe4j\": {\"routing\": " + routing + "}") + "}";
    }

    /** The greedy text the Java API generates from the prompt under {@code policy}. */
    private static String expected(ServedModel served, RoutingPolicy policy) {
        var folder = served.folder();
        return new Generator(folder.model(), folder.text()).generate(PROMPT,
                GenerationOptions.greedy(6, folder.eosTokenIds()).withRouting(policy), GenerationListener.NONE).text();
    }

    private static String text(HttpResponse<String> response) {
        return TestServer.ok(response).get("choices").get(0).get("text").asText();
    }

    @Test
    void aRequestRoutedByAPolicyGetsWhatTheJavaApiGenerates() {
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            String trained = text(server.post("/v1/completions", body(null)));
            assertEquals(expected(server.served, RoutingPolicy.TRAINED), trained);
            String[] routings = {"{\"experts_per_token\": 1}", "{\"expert_top_p\": 0.3, \"max_experts\": 4}",
                    "{\"expert_mask\": {\"*\": [0, 1]}, \"force_experts\": \"1:7\"}", "{\"expert_floor\": 0.25}",
                    "{\"capacity_factor\": 1.0, \"capacity_overflow\": \"next-choice\"}"};
            String[] specs = {"k=1", "top-p=0.3 max=4", "mask=*:0,1 force=1:7", "floor=0.25",
                    "capacity=1 overflow=next-choice"};
            var seen = new java.util.HashSet<String>();
            for (int i = 0; i < routings.length; i++) {
                String got = text(server.post("/v1/completions", body(routings[i])));
                assertEquals(expected(server.served, RoutingPolicy.parse(specs[i], "spec")), got, routings[i]);
                seen.add(got);
            }
            assertTrue(seen.size() > 1, "the policies change the replies: " + seen);
        }
    }

    @Test
    void requestsOfDifferentPoliciesDecodedTogetherGetWhatEachGetsAlone() throws Exception {
        var counting = new ArrayList<ServingTest.BatchCounting>();
        ModelFolder.Opener opener = (folder, config, backend) -> {
            counting.add(new ServingTest.BatchCounting(ModelFolder.Opener.CHECKPOINT.open(folder, config, backend)));
            return counting.getLast();
        };
        List<String> bodies = List.of(body(null), body("{\"experts_per_token\": 1}"),
                body("{\"expert_top_p\": 0.3, \"max_experts\": 4}"), body("{\"expert_mask\": \"0:0-3\"}"),
                body("{\"experts_per_token\": 3}"));
        var alone = new ArrayList<String>();
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("a"), true), opener, 1)) {
            for (String b : bodies) {
                alone.add(text(server.post("/v1/completions", b)));
            }
        }
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir.resolve("b"), true), opener, 8)) {
            var replies = bodies.stream().map(b -> CompletableFuture.supplyAsync(() ->
                    server.post("/v1/completions", b))).toList();
            for (int i = 0; i < bodies.size(); i++) {
                assertEquals(alone.get(i), text(replies.get(i).get(60, TimeUnit.SECONDS)), bodies.get(i));
            }
        }
        assertTrue(counting.get(1).largest.get() > 1, "some steps decoded requests of different policies together");
    }

    @Test
    void aKeptCacheServesOnlyRequestsOfItsOwnPolicy() {
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            String first = "{\"prompt\": [1, 20, 30, 40, 50, 60], \"max_tokens\": 2, \"temperature\": 0";
            String longer = "{\"prompt\": [1, 20, 30, 40, 50, 60, 70, 80], \"max_tokens\": 2, \"temperature\": 0";
            TestServer.ok(server.post("/v1/completions", first + "}"));
            JsonNode routed = TestServer.ok(server.post("/v1/completions", longer
                    + ", \"moe4j\": {\"routing\": {\"experts_per_token\": 1}}}"));
            assertEquals(0, cached(routed), "the trained routing's cache is of no use to k=1");
            JsonNode trained = TestServer.ok(server.post("/v1/completions", longer + "}"));
            assertEquals(6, cached(trained), "the trained cache was left for a trained request");
        }
    }

    private static int cached(JsonNode reply) {
        return reply.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt();
    }

    @Test
    void theServersPolicyRoutesRequestsThatAskForNone() {
        try (var opened = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            ServedModel routed = opened.served.withRouting(RoutingPolicy.experts(1));
            try (var server = ModelServer.start(routed, "127.0.0.1", 0, ServeLimits.DEFAULT,
                    new java.io.PrintWriter(new java.io.StringWriter()))) {
                var client = java.net.http.HttpClient.newHttpClient();
                String one = post(client, server, body(null));
                assertEquals(expected(routed, RoutingPolicy.experts(1)), one);
                // an empty routing object asks for the trained routing
                assertEquals(expected(routed, RoutingPolicy.TRAINED), post(client, server, body("{}")));
            }
        }
    }

    private static String post(java.net.http.HttpClient client, ModelServer server, String json) {
        try {
            var request = java.net.http.HttpRequest.newBuilder(server.uri().resolve("/v1/completions"))
                    .header("Content-Type", "application/json")
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString(json)).build();
            return text(client.send(request, HttpResponse.BodyHandlers.ofString()));
        } catch (java.io.IOException | InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void thePageAsksForTheRoutingItsFieldsSay() throws Exception {
        java.nio.file.Path chromium = HeadlessChromium.find().orElse(null);
        org.junit.jupiter.api.Assumptions.assumeTrue(chromium != null, "no Chromium installed: the page is not checked");
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            String expected = text(server.post("/v1/completions", "{\"prompt\": \"The page\", \"max_tokens\": 12,"
                    + " \"temperature\": 0, \"moe4j\": {\"routing\": {\"experts_per_token\": 1}}}"));
            String trained = text(server.post("/v1/completions", "{\"prompt\": \"The page\", \"max_tokens\": 12,"
                    + " \"temperature\": 0}"));
            assertNotEquals(trained, expected, "k=1 changes this reply, so the page's text tells which it asked for");
            var page = server.uri("/?mode=completion&prompt=The%20page&max_tokens=12&temperature=0&experts_per_token=1"
                    + "&run=1");
            try (var browser = new HeadlessChromium(chromium, dir.resolve("profile"), page)) {
                long until = System.nanoTime() + 60_000_000_000L;
                while (!"done".equals(browser.evaluate("document.body && document.body.dataset.state"))) {
                    assertTrue(System.nanoTime() < until, "the page never finished");
                    Thread.sleep(100);
                }
                assertEquals("", browser.evaluate("document.getElementById('error').textContent"));
                assertEquals(expected, browser.evaluate("document.getElementById('output').textContent"));
            }
        }
    }

    @Test
    void aPolicyTheModelCannotFollowIsA400NamingTheField() {
        try (var server = TestServer.start(TestServer.modelFolder("mixtral", dir, true))) {
            for (String[] c : new String[][] {
                    {"{\"experts_per_token\": 9}", "moe4j.routing.experts_per_token 9: the model's MoE layers have 8"
                            + " experts"},
                    {"{\"expert_mask\": \"4:0\"}", "moe4j.routing.expert_mask 4:0: layer 4 is not an MoE layer of this"
                            + " model (MoE layers: 0,1)"},
                    {"{\"expert_mask\": {\"*\": [0, 1, 2, 3, 4, 5, 6, 7]}}", "moe4j.routing.expert_mask: every expert of"
                            + " layer 0 is masked; leave at least one"}}) {
                HttpResponse<String> r = server.post("/v1/completions", body(c[0]));
                assertEquals(400, r.statusCode(), r.body());
                JsonNode error = Json.parse(r.body(), "error").get("error");
                assertEquals("moe4j.routing", error.get("param").asText());
                assertEquals(c[1], error.get("message").asText());
            }
        }
    }
}
