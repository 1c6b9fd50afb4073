package dev.moe4j.cli.report;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * The HTML report of an experiment: one self-contained file (no network needed) holding the results.json, the
 * page's own script and style, and Apache ECharts (from its WebJar on Maven Central) inlined, which draws the
 * charts when the page opens.
 */
public final class ReportPage {
    /** The report's file name inside an experiment's folder. */
    public static final String FILE = "report.html";
    private static final String ECHARTS_POM = "META-INF/maven/org.webjars/echarts/pom.properties";

    private ReportPage() {
    }

    /** Reads {@code folder/results.json} and writes the report to {@code out} (atomically); returns {@code out}. */
    public static Path write(Path folder, Path out) {
        AtomicFiles.writeString(out, render(results(folder)));
        return out;
    }

    /** The results.json of an experiment's folder, checked to be one. */
    public static JsonNode results(Path folder) {
        Path results = folder.resolve("results.json");
        if (!Files.isRegularFile(results)) {
            throw new BadInputException(folder + ": no results.json (run moe4j experiment first)");
        }
        JsonNode node = Json.read(results);
        if (!node.path("variants").isArray() || node.path("experiment").asText().isEmpty()) {
            throw new BadInputException(results + ": not an experiment's results (expected 'experiment' and 'variants')");
        }
        return node;
    }

    /** The page for a results.json tree. */
    public static String render(JsonNode results) {
        String title = "moe4j experiment " + results.path("experiment").asText() + ": " + results.path("title").asText();
        // The vision experiment's results have their own layout: capacities and patch grids rather than loss curves.
        return page(title, results, results.path("experiment").asText().equals("vmoe") ? "vmoe.js" : "report.js");
    }

    /**
     * A self-contained page titled {@code title}: {@code data} embedded as the JSON element {@code #results}, the
     * report style, ECharts, and the script {@code script} of this package's resources, which draws it (and, like
     * report.js, sets {@code data-rendered} and {@code data-errors} on the body when done).
     */
    public static String page(String title, JsonNode data, String script) {
        return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                + "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                + "<meta name=\"generator\" content=\"moe4j report (Apache ECharts " + echartsVersion() + ")\">\n"
                + "<title>" + escapeHtml(title) + "</title>\n"
                + "<style>\n" + resource("report.css") + "</style>\n"
                + "<script>\n" + scriptText(echarts()) + "\n</script>\n"
                + "</head>\n<body>\n<main></main>\n<pre id=\"errors\"></pre>\n"
                + "<script type=\"application/json\" id=\"results\">\n" + scriptText(Json.compact(data))
                + "\n</script>\n"
                + "<script>\n" + scriptText(resource(script)) + "</script>\n"
                + "</body>\n</html>\n";
    }

    /** Text that cannot end the script element it sits in. */
    static String scriptText(String text) {
        return text.replace("</", "<\\/").replace("<!--", "<\\!--");
    }

    static String escapeHtml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    static String echartsVersion() {
        try (InputStream in = ReportPage.class.getClassLoader().getResourceAsStream(ECHARTS_POM)) {
            if (in == null) {
                throw new IllegalStateException(ECHARTS_POM + " is missing from the class path (the ECharts WebJar)");
            }
            var p = new Properties();
            p.load(in);
            return p.getProperty("version");
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + ECHARTS_POM, e);
        }
    }

    private static String echarts() {
        return read("META-INF/resources/webjars/echarts/" + echartsVersion() + "/echarts.min.js");
    }

    private static String resource(String name) {
        return read("dev/moe4j/cli/report/" + name);
    }

    private static String read(String path) {
        try (InputStream in = ReportPage.class.getClassLoader().getResourceAsStream(path)) {
            if (in == null) {
                throw new IllegalStateException(path + " is missing from the class path");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + path, e);
        }
    }
}
