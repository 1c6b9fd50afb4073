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
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

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
                        + "    <failure message=\"expected: &lt;1&gt; but was: &lt;2&gt;\" "
                        + "type=\"AssertionFailedError\">"
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
                + (status == 0 ? "" : "echo '" + failing + "' > io/target/surefire-reports/"
                        + "TEST-dev.moe4j.io.ReaderTest.xml\n")
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

    /** A JDK older than 25 on this machine (Debian's default is 17), if there is one. */
    private static Optional<Path> olderJdk() throws IOException {
        Path jvms = Path.of("/usr/lib/jvm");
        if (!Files.isDirectory(jvms)) {
            return Optional.empty();
        }
        try (var homes = Files.list(jvms)) {
            return homes.filter(h -> Files.isExecutable(h.resolve("bin/java")))
                    .filter(h -> Files.isRegularFile(h.resolve("release")))
                    .filter(h -> {
                        try {
                            var version = Files.readAllLines(h.resolve("release")).stream()
                                    .filter(l -> l.startsWith("JAVA_VERSION=")).findFirst().orElse("");
                            var major = version.replaceAll("JAVA_VERSION=\"?(\\d+).*", "$1");
                            return !major.isEmpty() && Integer.parseInt(major) < 25;
                        } catch (IOException | NumberFormatException e) {
                            return false;
                        }
                    }).findFirst();
        }
    }

    @Test
    void plainMavenOnAnOlderJavaStartsAndSaysInOneLineThatMoe4jNeedsJdk25() throws Exception {
        var jdk = olderJdk();
        assumeTrue(jdk.isPresent(), "no JDK older than 25 here");
        // Maven starts its JVM with .mvn/jvm.config: every option there must be one an older JVM accepts.
        var command = new ArrayList<>(List.of(jdk.get().resolve("bin/java").toString()));
        command.addAll(List.of(Files.readString(repository().resolve(".mvn/jvm.config")).trim().split("\\s+")));
        command.add("-version");
        Process older = new ProcessBuilder(command).redirectErrorStream(true).start();
        String said = new String(older.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, older.waitFor(), ".mvn/jvm.config on " + jdk.get() + ":\n" + said);

        boolean maven = System.getenv("PATH") != null && Arrays.stream(System.getenv("PATH").split(":"))
                .anyMatch(d -> Files.isExecutable(Path.of(d, "mvn")));
        assumeTrue(maven, "no mvn on the PATH");
        var builder = new ProcessBuilder("mvn", "-B", "-q", "-N", "-Dstyle.color=never", "validate")
                .directory(repository().toFile()).redirectErrorStream(true);
        builder.environment().put("JAVA_HOME", jdk.get().toString());
        Process mvn = builder.start();
        mvn.getOutputStream().close();
        String log = new String(mvn.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(1, mvn.waitFor(), log);
        assertTrue(log.contains("moe4j needs a JDK 25 or newer to build, but Maven runs on Java "), log);
    }
}
