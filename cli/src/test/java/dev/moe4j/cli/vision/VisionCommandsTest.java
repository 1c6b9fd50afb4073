package dev.moe4j.cli.vision;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.Main;
import dev.moe4j.io.json.Json;
import dev.moe4j.train.vision.FashionMnist;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vision commands end to end on the committed Fashion-MNIST subset: train-vision saves a model that classify
 * reads, experiment vmoe --quick writes its results and report (opened in headless Chromium where installed), and
 * bad input stops in one line.
 */
class VisionCommandsTest {
    static final Path SUBSET = Path.of("../data/fashion-mnist-subset");
    @TempDir
    static Path dir;
    static Result trained;
    static Result experiment;

    record Result(int status, String out, String err) {
    }

    static Result run(String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        int status = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(status, out.toString(), err.toString());
    }

    @BeforeAll
    static void trainAndExperiment() {
        trained = run("train-vision", "--data", SUBSET.toString(), "--width", "16", "--layers", "2", "--heads", "2",
                "--expert-width", "16", "--experts", "4", "--epochs", "1", "--batch", "32", "--out",
                dir.resolve("model").toString());
        experiment = run("experiment", "vmoe", "--quick", "--images", SUBSET.toString(), "--limit", "128", "--runs",
                dir.resolve("runs").toString());
    }

    /** Test image i of the subset written as an 8-bit greyscale PNG. */
    static Path png(int i, int size) throws Exception {
        var test = FashionMnist.read(SUBSET).test();
        var image = new BufferedImage(size, size, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                image.getRaster().setSample(x, y, 0, y < 28 && x < 28 ? test.pixel(i, y * 28 + x) : 0);
            }
        }
        Path file = dir.resolve("image" + i + "-" + size + ".png");
        ImageIO.write(image, "png", file.toFile());
        return file;
    }

    @Test
    void trainVisionReportsAccuracyPerClassAndExpertAndSavesTheModel() {
        assertEquals(0, trained.status(), trained.err() + trained.out());
        assertTrue(trained.out().contains("test accuracy"), trained.out());
        assertTrue(trained.out().contains("Ankle boot"), trained.out());
        assertTrue(trained.out().contains("MoE layer 1: patches per expert"), trained.out());
        assertTrue(Pattern.compile("training: 10 steps, \\d+ images/s").matcher(trained.out()).find(), trained.out());
        assertTrue(Files.isRegularFile(dir.resolve("model/model.safetensors")));
        assertTrue(Files.isRegularFile(dir.resolve("model/preprocessor_config.json")));
    }

    @Test
    void classifyPrintsTheClassesAndEachPatchsExpert() throws Exception {
        Path image = png(0, 28);
        var r = run("classify", "--model", dir.resolve("model").toString(), image.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().startsWith(image + ": "), r.out());
        assertTrue(FashionMnist.CLASSES.stream().anyMatch(c -> r.out().contains(c + " ")), r.out());
        assertTrue(r.out().contains("MoE layer 1 experts by patch:"), r.out());
        // four rows of four patches, each an expert id (of 4) or a dot, two characters wide
        var rows = Pattern.compile("(?m)^    ( [.0-3]){4}$").matcher(r.out());
        int count = 0;
        while (rows.find()) {
            count++;
        }
        assertEquals(4, count, r.out());
    }

    @Test
    void classifyRefusesAnImageOfTheWrongSizeOrNoImageInOneLine() throws Exception {
        var wrong = run("classify", "--model", dir.resolve("model").toString(), png(0, 32).toString());
        assertEquals(2, wrong.status());
        assertTrue(wrong.err().contains("size: expected 28x28 pixels (the model's), got 32x32"), wrong.err());
        Path text = Files.writeString(dir.resolve("not-an-image.png"), "hello");
        var garbage = run("classify", "--model", dir.resolve("model").toString(), text.toString());
        assertEquals(2, garbage.status());
        assertEquals(1, garbage.err().strip().lines().count(), garbage.err());
        var noModel = run("classify", "--model", dir.resolve("nothing").toString(), text.toString());
        assertEquals(2, noModel.status());
        assertTrue(noModel.err().contains("not a model folder"), noModel.err());
    }

    @Test
    void trainVisionWithoutItsDataSaysWhereItLooked() {
        var r = run("train-vision", "--data", dir.resolve("missing").toString(), "--out", dir.resolve("m2").toString());
        assertEquals(2, r.status());
        assertTrue(r.err().contains("missing: not a folder (expected the four Fashion-MNIST IDX files)"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertFalse(Files.exists(dir.resolve("m2")));
    }

    @Test
    void aQuickVmoeExperimentWritesEveryPartOfItsResults() {
        assertEquals(0, experiment.status(), experiment.err() + experiment.out());
        JsonNode r = Json.read(dir.resolve("runs/vmoe-quick/results.json"));
        assertEquals("vmoe", r.path("experiment").asText());
        var names = new ArrayList<String>();
        r.path("variants").forEach(v -> names.add(v.path("name").asText()));
        assertEquals(List.of("dense", "vmoe", "soft-moe"), names);
        r.path("variants").forEach(v -> assertEquals(2, v.path("runs").size()));
        assertEquals(8, r.path("capacity").size());
        double full = r.path("capacity").get(1).path("mean_processed_share").asDouble();
        double eighth = r.path("capacity").get(7).path("mean_processed_share").asDouble();
        assertTrue(eighth < full, eighth + " vs " + full);
        assertEquals(8, r.path("images").path("views").size());
        assertEquals(24, r.path("images").path("pixels").size());
        assertTrue(r.path("machine").path("peak_gflops").asDouble() > 0);
        assertTrue(Files.isRegularFile(dir.resolve("runs/vmoe-quick/report.html")));
        var markdown = run("report", dir.resolve("runs/vmoe-quick").toString(), "--markdown");
        assertEquals(0, markdown.status(), markdown.err());
        assertTrue(markdown.out().contains("| Soft MoE: 8 experts x 4 slots per image |"), markdown.out());
        assertTrue(markdown.out().contains("| 0.125 | batch priority |"), markdown.out());
    }

    @Test
    void theVmoeReportRendersInHeadlessChromium() throws Exception {
        Path chromium = List.of(Path.of("/usr/bin/chromium"), Path.of("/usr/bin/chromium-browser"),
                Path.of("/usr/bin/google-chrome")).stream().filter(Files::isExecutable).findFirst().orElse(null);
        Assumptions.assumeTrue(chromium != null, "no Chromium installed: the rendering check is skipped");
        Path page = dir.resolve("runs/vmoe-quick/report.html");
        var command = List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=" + dir.resolve("chromium-profile"), "--virtual-time-budget=5000", "--dump-dom",
                page.toUri().toString());
        Path dom = dir.resolve("dom.html");
        Process p = new ProcessBuilder(command).redirectOutput(dom.toFile())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        assertTrue(p.waitFor(90, TimeUnit.SECONDS), "chromium did not finish");
        String html = Files.readString(dom);
        var rendered = Pattern.compile("data-rendered=\"(\\d+)\"").matcher(html);
        assertTrue(rendered.find(), "the page's script never finished");
        // accuracy per class, V-MoE's patches per expert (Soft MoE's equal shares are not drawn), accuracy against
        // capacity, the image grid
        assertEquals(4, Integer.parseInt(rendered.group(1)), rendered.group(1));
        assertTrue(html.contains("data-errors=\"0\""), html.substring(Math.max(0, html.indexOf("errors")),
                Math.min(html.length(), html.indexOf("errors") + 400)));
        // eight views of 24 images
        assertEquals(8 * 24, html.split("<canvas", -1).length - 1);
    }
}
