package dev.moe4j.core.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * A scratch folder for fuzz targets whose parser reads a file: one folder per test class for the whole run (a
 * fuzzing campaign calls the target many thousand times), removed when the JVM exits.
 */
public final class FuzzFiles {
    private final Path folder;

    public FuzzFiles(String name) {
        try {
            folder = Files.createTempDirectory("moe4j-fuzz-" + name);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(this::delete));
    }

    public Path folder() {
        return folder;
    }

    /** Writes {@code bytes} to {@code name} in the folder, replacing what an earlier input left there. */
    public Path write(String name, byte[] bytes) throws IOException {
        return Files.write(folder.resolve(name), bytes);
    }

    private void delete() {
        try (Stream<Path> paths = Files.walk(folder)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException ignored) {
            // A scratch folder under the system's temporary directory: nothing to report at exit.
        }
    }
}
