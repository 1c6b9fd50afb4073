package dev.moe4j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@code moe4j} launcher script itself, run by bash in a copy of the repository's layout: a stand-in jar where it
 * expects moe4j's (so that it builds nothing), and for {@code ./moe4j test} a stand-in mvn that writes Surefire
 * reports.
 */
class LauncherTest {
    @TempDir
    Path root;

    private record Result(int status, String output) {
    }

    /** The repository's root: the folder above this module that holds the launcher. */
    private static Path repository() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("moe4j")) && Files.isDirectory(p.resolve("cli"))) {
                return p;
            }
        }
        throw new IllegalStateException("no moe4j launcher above " + Path.of("").toAbsolutePath());
    }

    private void copy(String file) throws IOException {
        Path target = root.resolve(file);
        Files.createDirectories(target.getParent());
        Files.copy(repository().resolve(file), target);
    }

    /** Runs the copied launcher with stdout and stderr joined into one pipe, as a terminal or a log file sees them. */
    private Result launch(Path path, String... args) throws Exception {
        var command = new ArrayList<>(List.of("bash", root.resolve("moe4j").toString()));
        command.addAll(List.of(args));
        var builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().put("JAVA_HOME", System.getProperty("java.home"));
        builder.environment().remove("MOE4J_JAVA_OPTS");
        if (path != null) {
            builder.environment().put("PATH", path + ":" + System.getenv("PATH"));
        }
        Process p = builder.start();
        p.getOutputStream().close();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Result(p.waitFor(), output);
    }

    private static void addClass(JarOutputStream jar, Class<?> type) throws IOException {
        String name = type.getName().replace('.', '/') + ".class";
        jar.putNextEntry(new JarEntry(name));
        try (InputStream in = type.getClassLoader().getResourceAsStream(name)) {
            in.transferTo(jar);
        }
        jar.closeEntry();
    }

    @Test
    void standardErrorArrivesInOrderWithStandardOutputAndWithoutTheIncubatorNotice() throws Exception {
        copy("moe4j");
        var manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().put(Attributes.Name.MAIN_CLASS, LauncherProbe.class.getName());
        Path jar = Files.createDirectories(root.resolve("cli/target")).resolve("moe4j.jar");
        try (var out = new JarOutputStream(Files.newOutputStream(jar), manifest)) {
            addClass(out, LauncherProbe.class);
            addClass(out, LauncherStderr.class);
        }
        int lines = 300;
        Result r = launch(null, Integer.toString(lines));
        assertEquals(0, r.status(), r.output());
        var expected = new StringBuilder();
        for (int i = 0; i < lines; i++) {
            expected.append("err ").append(i).append('\n').append("out ").append(i).append('\n');
        }
        assertEquals(expected.toString(), r.output(), "every stderr line before the stdout line written after it");
    }

    private static String report(String suite, int tests, int failures, int skipped, String cases) {
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"" + suite + "\" tests=\"" + tests
                + "\" errors=\"0\" skipped=\"" + skipped + "\" failures=\"" + failures + "\">\n" + cases
                + "</testsuite>\n";
    }

    /** A stand-in mvn: Maven's noise, two modules' reports (one failed test), and the given exit status. */
    private Path fakeMaven(int status) throws IOException {
        Path bin = Files.createDirectories(root.resolve("bin"));
        String failing = report("dev.moe4j.io.ReaderTest", 3, 1, 1,
                "  <testcase name=\"readsAHeader\" classname=\"dev.moe4j.io.ReaderTest\" time=\"0.1\">\n"
                        + "    <failure message=\"expected: &lt;1&gt; but was: &lt;2&gt;\" type=\"AssertionFailedError\">"
                        + "org.opentest4j.AssertionFailedError: expected: &lt;1&gt; but was: &lt;2&gt;\n"
                        + "\tat dev.moe4j.io.ReaderTest.readsAHeader(ReaderTest.java:42)\n</failure>\n"
                        + "  </testcase>\n");
        String script = "#!/usr/bin/env bash\n"
                + "echo '[INFO] Building moe4j core 0.1.0-SNAPSHOT                          [1/2]'\n"
                + "for i in $(seq 1 600); do echo \"[INFO] maven noise $i\"; done\n"
                + "mkdir -p core/target/surefire-reports io/target/surefire-reports\n"
                + "echo '" + report("dev.moe4j.core.TensorTest", 4, 0, 0, "") + "' > core/target/surefire-reports/"
                + "TEST-dev.moe4j.core.TensorTest.xml\n"
                + "echo '[INFO] Building moe4j io 0.1.0-SNAPSHOT                            [2/2]'\n"
                + (status == 0 ? "" : "echo '" + failing + "' > io/target/surefire-reports/TEST-dev.moe4j.io.ReaderTest.xml\n")
                + "echo '[ERROR] There are test failures.'\n"
                + "exit " + status + "\n";
        Path mvn = bin.resolve("mvn");
        Files.writeString(mvn, script);
        Files.setPosixFilePermissions(mvn, PosixFilePermissions.fromString("rwxr-xr-x"));
        return bin;
    }

    @Test
    void testPrintsFailuresInFullTheCountsAndAClosingLineAndKeepsMavensStatus() throws Exception {
        copy("moe4j");
        copy("scripts/TestSummary.java");
        // A report of an earlier run (a module not run this time) does not count.
        Path stale = Files.createDirectories(root.resolve("train/target/surefire-reports"))
                .resolve("TEST-dev.moe4j.train.OldTest.xml");
        Files.writeString(stale, report("dev.moe4j.train.OldTest", 9, 9, 0, ""));
        Files.setLastModifiedTime(stale, FileTime.from(Instant.now().minusSeconds(3600)));

        Result failed = launch(fakeMaven(1), "test");
        assertEquals(1, failed.status(), failed.output());
        assertFalse(failed.output().contains("maven noise"), "Maven's log goes to a file:\n" + failed.output());
        assertTrue(failed.output().contains("moe4j: [1/2] moe4j core\nmoe4j: [2/2] moe4j io\n"), failed.output());
        assertTrue(failed.output().contains("FAILED io: dev.moe4j.io.ReaderTest.readsAHeader\n"
                + "org.opentest4j.AssertionFailedError: expected: <1> but was: <2>\n"
                + "\tat dev.moe4j.io.ReaderTest.readsAHeader(ReaderTest.java:42)"), failed.output());
        List<String> lines = failed.output().lines().toList();
        assertEquals("5 passed, 1 failed, 1 skipped", lines.getLast(), "the closing line: " + failed.output());
        assertEquals(600, Files.readAllLines(root.resolve("target/test.log")).stream()
                .filter(l -> l.contains("maven noise")).count(), "the whole log is kept");

        Result passed = launch(fakeMaven(0), "test");
        assertEquals(0, passed.status(), passed.output());
        assertEquals("4 passed, 0 failed, 0 skipped", passed.output().lines().toList().getLast(), passed.output());
    }
}
