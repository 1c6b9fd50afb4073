import org.w3c.dom.Element;
import org.w3c.dom.Node;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * What {@code ./moe4j test} prints after Maven ran the suite into a log: every failed test in full (its message and
 * stack trace, from Surefire's XML reports), the count per module, and a closing line "N passed, N failed, N skipped"
 * that people and CI read. When Maven failed without a failed test (a compile error, a crashed test JVM), its error
 * lines from the log say why.
 *
 * <p>Run by the launcher as a single-file program: {@code java scripts/TestSummary.java ROOT STARTED LOG STATUS},
 * where only reports written after the file STARTED count (reports of modules or tests not run this time stay in
 * target/ from earlier runs) and STATUS is Maven's exit status.
 */
public class TestSummary {
    /** A module's counts. */
    static final class Counts {
        int tests;
        int failed;
        int skipped;
    }

    public static void main(String[] args) throws Exception {
        Path root = Path.of(args[0]);
        FileTime started = Files.getLastModifiedTime(Path.of(args[1]));
        Path log = Path.of(args[2]);
        int status = Integer.parseInt(args[3]);

        Map<String, Counts> modules = new TreeMap<>();
        List<String> failures = new ArrayList<>();
        for (Path report : reports(root, started)) {
            String module = root.relativize(report.getParent().getParent().getParent()).toString();
            Counts c = modules.computeIfAbsent(module, m -> new Counts());
            Element suite = parse(report);
            c.tests += number(suite, "tests");
            c.failed += number(suite, "failures") + number(suite, "errors");
            c.skipped += number(suite, "skipped");
            var cases = suite.getElementsByTagName("testcase");
            for (int i = 0; i < cases.getLength(); i++) {
                var testcase = (Element) cases.item(i);
                for (Node n = testcase.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (n instanceof Element problem && (problem.getTagName().equals("failure")
                            || problem.getTagName().equals("error"))) {
                        String trace = problem.getTextContent().strip();
                        failures.add("FAILED " + module + ": " + testcase.getAttribute("classname") + "."
                                + testcase.getAttribute("name") + "\n"
                                + (trace.isEmpty() ? problem.getAttribute("message") : trace));
                    }
                }
            }
        }

        for (String failure : failures) {
            System.out.println(failure);
            System.out.println();
        }
        int tests = 0, failed = 0, skipped = 0;
        for (var e : modules.entrySet()) {
            Counts c = e.getValue();
            System.out.printf("  %-8s %5d tests, %d failed, %d skipped%n", e.getKey(), c.tests, c.failed, c.skipped);
            tests += c.tests;
            failed += c.failed;
            skipped += c.skipped;
        }
        if (status != 0 && failed == 0) {
            // Maven failed for a reason no test report holds: show its own account of it.
            errorLines(log).forEach(System.out::println);
            System.out.println("moe4j: error: mvn verify failed" + (tests == 0 ? " before any test ran" : "")
                    + " (exit status " + status + "; the whole log is " + log + ")");
        }
        if (tests > 0 || status == 0) {
            System.out.println((tests - failed - skipped) + " passed, " + failed + " failed, " + skipped + " skipped");
        }
    }

    /** Surefire's XML reports under {@code root}'s modules, written since {@code started}. */
    static List<Path> reports(Path root, FileTime started) throws IOException {
        try (Stream<Path> walk = Files.walk(root, 4)) {
            return walk.filter(p -> p.getFileName().toString().startsWith("TEST-")
                            && p.getFileName().toString().endsWith(".xml")
                            && p.getParent().getFileName().toString().equals("surefire-reports"))
                    .filter(p -> {
                        try {
                            return Files.getLastModifiedTime(p).compareTo(started) >= 0;
                        } catch (IOException e) {
                            return false;
                        }
                    })
                    .sorted().toList();
        }
    }

    static Element parse(Path report) throws Exception {
        var factory = DocumentBuilderFactory.newInstance();
        factory.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return factory.newDocumentBuilder().parse(report.toFile()).getDocumentElement();
    }

    static int number(Element suite, String attribute) {
        String value = suite.getAttribute(attribute);
        return value.isEmpty() ? 0 : Integer.parseInt(value);
    }

    /** Maven's [ERROR] lines, the last 40, without its advice on re-running. */
    static List<String> errorLines(Path log) throws IOException {
        if (!Files.isRegularFile(log)) {
            return List.of();
        }
        List<String> errors = Files.readAllLines(log, StandardCharsets.UTF_8).stream()
                .map(l -> l.replaceAll("\u001b\\[[0-9;]*m", ""))
                .filter(l -> l.startsWith("[ERROR]"))
                .filter(l -> !l.matches("\\[ERROR\\] *(-> \\[Help 1\\].*|To see the full stack trace.*|Re-run Maven.*"
                        + "|For more information.*|\\[Help 1\\].*|After correcting.*|  mvn <args>.*)?"))
                .toList();
        return errors.subList(Math.max(0, errors.size() - 40), errors.size());
    }
}
