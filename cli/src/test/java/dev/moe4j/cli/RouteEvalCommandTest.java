package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.generate.Scorer;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code moe4j route-eval} on the Mixtral fixture (8 experts, top-2): its perplexities are what scoring each window
 * with the policy gives, the trained row is the reference (KL 0, two experts), the statistics add up, and the page
 * is written (and renders in headless Chromium where one is installed).
 */
class RouteEvalCommandTest {
    @TempDir
    Path dir;

    private static final String TEXT = "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
            + "All that glitters is not gold; the early bird catches the worm, and fortune favours the bold.";

    private Cli.Result evaluate(Path model, Path text, String... extra) {
        var args = new ArrayList<>(List.of("route-eval", model.toString(), "--data", text.toString(), "--tokens", "40",
                "--context", "16", "--decode-prompt", "4", "--decode-tokens", "4", "--runs", "2"));
        args.addAll(List.of(extra));
        return Cli.run(ModelFolder.Opener.CHECKPOINT, args.toArray(String[]::new));
    }

    private Path text() throws IOException {
        return Files.writeString(dir.resolve("held-out.txt"), TEXT);
    }

    /** exp of the mean negative log-likelihood of the windows of 16 tokens, each scored alone under {@code policy}. */
    private static double windowedPerplexity(Path model, int[] ids, RoutingPolicy policy) {
        try (ModelFolder m = ModelFolder.open(model, ModelFolder.Opener.CHECKPOINT)) {
            double nll = 0;
            int count = 0;
            for (int start = 0; start + 1 < ids.length; start += 16) {
                int[] window = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + 16));
                for (float lp : new Scorer(m.model()).score(window, null, policy).logProbs()) {
                    nll -= lp;
                    count++;
                }
            }
            return Math.exp(nll / count);
        }
    }

    @Test
    void eachPolicysPerplexityIsWhatScoringItsWindowsGives() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        var r = evaluate(model, text(), "--policy", "k=1", "--policy", "top-p=0.3 max=4", "--json", "--html",
                dir.resolve("page.html").toString());
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "out");
        int[] ids;
        ParameterCount count;
        try (ModelFolder m = ModelFolder.open(model, ModelFolder.Opener.CHECKPOINT)) {
            ids = Arrays.copyOf(m.tokenizer().encodeIds(TEXT, true), 40);
            count = ParameterCount.of(m.config());
        }
        JsonNode policies = o.get("policies");
        assertEquals(List.of("trained", "k=1", "top-p=0.3 max=4"), names(policies));
        assertEquals(40 - 3, o.get("tokens").asInt(), "three windows of 16, 16 and 8: each first token is context");
        for (JsonNode p : policies) {
            RoutingPolicy policy = RoutingPolicy.parse(p.get("policy").asText(), "policy");
            double expected = windowedPerplexity(model, ids, policy);
            assertEquals(expected, p.get("perplexity").asDouble(), 1e-6 * expected, p.get("policy").asText());
            assertEquals(2, p.get("decode_tokens_per_s").get("runs").size());
            assertTrue(p.get("decode_tokens_per_s").get("median").asDouble() > 0);
            for (JsonNode layer : p.get("layers")) {
                long assigned = 0;
                for (JsonNode x : layer.get("load")) {
                    assigned += x.asLong();
                }
                assertEquals(layer.get("experts_per_token").asDouble() * 40, assigned, 1e-6,
                        "every token of the windows is routed once per layer");
            }
        }
        JsonNode trained = policies.get(0), one = policies.get(1), topP = policies.get(2);
        assertEquals(0, trained.get("mean_kl").asDouble());
        assertEquals(2.0, trained.get("experts_per_token").asDouble());
        assertEquals(count.active(), trained.get("active_parameters").asDouble(), 1e-6 * count.active());
        assertEquals(0, trained.get("layers").get(0).get("changed").asDouble());
        assertTrue(one.get("mean_kl").asDouble() > 0);
        assertEquals(1.0, one.get("experts_per_token").asDouble());
        assertEquals(1.0, one.get("layers").get(1).get("dropped_trained").asDouble(), "k=1 drops a trained expert");
        assertEquals(0.0, one.get("layers").get(1).get("added_untrained").asDouble(), "k=1 keeps the first choice");
        assertTrue(one.get("bytes_per_token").asDouble() < trained.get("bytes_per_token").asDouble());
        assertEquals(trained.get("bytes_per_token").asDouble() - 2 * o.get("expert_bytes").asDouble(),
                one.get("bytes_per_token").asDouble(), 1e-3, "one expert fewer in each of the two MoE layers");
        double e = topP.get("experts_per_token").asDouble();
        assertTrue(e >= 1 && e <= 4, "top-p between its bounds: " + e);
        String page = Files.readString(dir.resolve("page.html"));
        assertTrue(page.contains("echarts") && page.contains("Quality against speed") && page.contains("\"top-p=0.3 max=4\""));
    }

    private static List<String> names(JsonNode policies) {
        var out = new ArrayList<String>();
        policies.forEach(p -> out.add(p.get("policy").asText()));
        return out;
    }

    @Test
    void theTablesNameTheMachineAndEveryDefaultPolicy() throws IOException {
        var r = evaluate(Fixtures.model("mixtral", dir), text());
        assertEquals(0, r.status(), r.err());
        for (String p : List.of("trained", "k=1", "k=3", "k=4", "top-p=0.5", "top-p=0.7", "top-p=0.9", "floor=0.1",
                "floor=0.25")) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(p + " ")), p + " in\n" + r.out());
        }
        assertTrue(r.out().contains("load average"), r.out());
    }

    @Test
    void aPolicyOrTextItCannotUseIsOneLine() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        var r = evaluate(model, text(), "--policy", "k=9");
        assertEquals(2, r.status());
        assertEquals("moe4j: error: --policy 'k=9': experts-per-token 9: the model's MoE layers have 8 experts",
                r.err().strip());
        r = evaluate(model, text(), "--policy", "k=1 bogus=2");
        assertEquals("moe4j: error: --policy 'k=1 bogus=2': unknown key 'bogus' (keys: k, top-p, min, max, floor, mask,"
                + " force, capacity, overflow, priority)", r.err().strip());
        r = evaluate(model, dir.resolve("missing.txt"));
        assertEquals("moe4j: error: --data " + dir.resolve("missing.txt") + ": cannot read the text (no such file)",
                r.err().strip());
    }

    @Test
    void thePageRendersInHeadlessChromium() throws Exception {
        Path chromium = List.of(Path.of("/usr/bin/chromium"), Path.of("/usr/bin/chromium-browser"),
                Path.of("/usr/bin/google-chrome")).stream().filter(Files::isExecutable).findFirst().orElse(null);
        Assumptions.assumeTrue(chromium != null, "no Chromium installed: the rendering check is skipped");
        Path page = dir.resolve("page.html");
        var r = evaluate(Fixtures.model("mixtral", dir), text(), "--policy", "k=1", "--html", page.toString());
        assertEquals(0, r.status(), r.err());
        var command = List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + dir.resolve("profile"),
                "--virtual-time-budget=5000", "--dump-dom", page.toUri().toString());
        Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String dom = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(p.waitFor(90, TimeUnit.SECONDS), "chromium did not finish");
        assertTrue(dom.contains("data-errors=\"0\""), "the page's script failed: " + dom.substring(0,
                Math.min(2000, dom.length())));
        var rendered = java.util.regex.Pattern.compile("data-rendered=\"(\\d+)\"").matcher(dom);
        assertTrue(rendered.find(), "the script never finished");
        assertEquals(10, Integer.parseInt(rendered.group(1)), "two scatter plots, the speedup bars, six per-layer"
                + " charts and the load heatmap");
    }
}
