package dev.moe4j.cli.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.Main;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CI smoke of {@code moe4j experiment}: the specialisation experiment at {@code --quick} on a small generated
 * three-domain corpus, end to end (training runs, analysis, results.json, report.html); then the report page opened
 * in headless Chromium where one is installed.
 */
class ExperimentCommandTest {
    @TempDir
    static Path dir;
    static Result smoke;

    record Result(int status, String out, String err) {
    }

    static Result run(String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        int status = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(status, out.toString(), err.toString());
    }

    /** data/multidomain with three small domains of distinct character: prose, code and numbers. */
    @BeforeAll
    static void corpusAndSmokeRun() throws Exception {
        var random = new SplittableRandom(11);
        String[] words = {"the", "king", "speaks", "to", "his", "lord", "and", "my", "lady", "of", "night"};
        var prose = new StringBuilder();
        var code = new StringBuilder();
        var numbers = new StringBuilder();
        for (int i = 0; i < 900; i++) {
            prose.append(i % 12 == 0 ? "KING:\n" : "").append(words[random.nextInt(words.length)])
                    .append(i % 8 == 7 ? ".\n" : " ");
            code.append(i % 6 == 0 ? "def step(x):\n" : "").append("    y_").append(random.nextInt(9)).append(" = x[")
                    .append(random.nextInt(9)).append("] + 1\n");
            numbers.append(random.nextInt(100000)).append(i % 5 == 4 ? "\n" : ", ");
        }
        Path data = dir.resolve("root/data/multidomain");
        Files.createDirectories(data);
        for (var e : List.of(List.of("prose", prose.toString()), List.of("code", code.toString()),
                List.of("numbers", numbers.toString()))) {
            String text = e.get(1);
            int cut = text.indexOf('\n', text.length() * 9 / 10) + 1;
            Files.writeString(data.resolve(e.get(0) + ".txt"), text.substring(0, cut));
            Files.writeString(data.resolve(e.get(0) + ".valid.txt"), text.substring(cut));
        }
        smoke = run("experiment", "specialisation", "--quick", "--runs", dir.resolve("runs").toString(),
                "--data-root", dir.resolve("root").toString(), "--cache", dir.resolve("cache").toString());
    }

    @Test
    void aQuickExperimentWritesItsRunsResultsAndReport() {
        assertEquals(0, smoke.status(), smoke.err() + smoke.out());
        Path folder = dir.resolve("runs/specialisation-quick");
        JsonNode results = Json.read(folder.resolve("results.json"));
        assertEquals("specialisation", results.path("experiment").asText());
        assertTrue(results.path("quick").asBoolean());
        JsonNode variant = results.path("variants").get(0);
        assertEquals(2, variant.path("runs").size(), "two seeds");
        assertEquals(2, variant.path("summary").path("final_val_loss").path("n").asInt());
        JsonNode analysis = variant.path("runs").get(0).path("analysis");
        assertEquals(List.of("code", "numbers", "prose"), texts(analysis.path("domains").path("names")));
        assertEquals(3, analysis.path("passages").size());
        assertTrue(Files.isDirectory(folder.resolve("top2-s1")) && Files.isDirectory(folder.resolve("top2-s2")));
        assertTrue(smoke.out().contains("wrote " + folder.resolve("results.json")), smoke.out());
        String html = read(folder.resolve("report.html"));
        assertTrue(html.startsWith("<!DOCTYPE html>"));
        assertTrue(html.contains("echarts"), "the chart library is inlined");
        assertFalse(Pattern.compile("<script[^>]+src=").matcher(html).find(), "no external scripts");
        assertTrue(html.contains("\"experiment\":\"specialisation\""), "results embedded");
    }

    @Test
    void aSecondRunReusesTheRunsAlreadyDone() {
        Result again = run("experiment", "specialisation", "--quick", "--runs", dir.resolve("runs").toString(),
                "--data-root", dir.resolve("root").toString(), "--cache", dir.resolve("cache").toString());
        assertEquals(0, again.status(), again.err());
        assertEquals(2, again.out().split("\\(done before\\)", -1).length - 1, again.out());
    }

    @Test
    void theReportCommandRewritesThePageAndRefusesAFolderWithoutResults() throws Exception {
        Path page = dir.resolve("elsewhere.html");
        Result r = run("report", dir.resolve("runs/specialisation-quick").toString(), "--out", page.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(read(page).contains("<main></main>"));
        Path empty = Files.createDirectories(dir.resolve("empty"));
        Result bad = run("report", empty.toString());
        assertEquals(2, bad.status());
        assertEquals("moe4j: error: " + empty + ": no results.json (run moe4j experiment first)\n", bad.err());
        Result markdown = run("report", dir.resolve("runs/specialisation-quick").toString(), "--markdown");
        assertEquals(0, markdown.status(), markdown.err());
        assertTrue(markdown.out().contains("| 8 experts top-2 |"), markdown.out());
    }

    @Test
    void unknownExperimentsAreOneLineErrors() {
        Result r = run("experiment", "nonsense");
        assertEquals(2, r.status());
        assertEquals("moe4j: error: unknown experiment 'nonsense' (expected one of moe-vs-dense, routing, balance, "
                + "capacity, granularity, stability, specialisation, or all)\n", r.err());
        Result list = run("experiment", "--list");
        assertEquals(0, list.status());
        assertTrue(list.out().contains("capacity: Capacity factor"), list.out());
    }

    /**
     * Opens the smoke run's report in headless Chromium and reads back the DOM after its scripts ran: the page marks
     * how many charts it drew and how many errors it met, and the charts are SVG drawn by ECharts.
     */
    @Test
    void theReportRendersInHeadlessChromium() throws Exception {
        Path chromium = List.of(Path.of("/usr/bin/chromium"), Path.of("/usr/bin/chromium-browser"),
                Path.of("/usr/bin/google-chrome")).stream().filter(Files::isExecutable).findFirst().orElse(null);
        Assumptions.assumeTrue(chromium != null, "no Chromium installed: the rendering check is skipped");
        Path page = dir.resolve("runs/specialisation-quick/report.html");
        var command = new ArrayList<>(List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + dir.resolve("chromium-profile"), "--virtual-time-budget=5000",
                "--dump-dom", page.toUri().toString()));
        Path dom = dir.resolve("dom.html");
        Process p = new ProcessBuilder(command).redirectOutput(dom.toFile())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        assertTrue(p.waitFor(90, TimeUnit.SECONDS), "chromium did not finish");
        String html = read(dom);
        var rendered = Pattern.compile("data-rendered=\"(\\d+)\"").matcher(html);
        assertTrue(rendered.find(), "the page's script never finished");
        int charts = Integer.parseInt(rendered.group(1));
        assertTrue(charts >= 12, charts + " charts");
        assertTrue(html.contains("data-errors=\"0\""), "script errors: " + errorText(html));
        int svgs = count(html, "<svg");
        assertTrue(svgs >= charts, svgs + " SVG elements for " + charts + " charts");
        assertTrue(count(html, "<path") > 100, "charts have drawn shapes");
        assertTrue(count(html, "data-expert=") >= 10, "the coloured passage has tokens");
    }

    private static String errorText(String html) {
        int from = html.indexOf("<pre id=\"errors\">");
        return from < 0 ? "(no error element)" : html.substring(from, Math.min(html.length(), from + 500));
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }

    private static List<String> texts(JsonNode array) {
        var out = new ArrayList<String>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    private static String read(Path p) {
        try {
            return Files.readString(p, StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
