package dev.moe4j.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class AtomicDirectoryTest {
    @TempDir
    Path dir;

    @Test
    void aFailedWriteLeavesThePreviousVersionIntactAndNoTemporaryFolder() throws IOException {
        Path target = dir.resolve("checkpoint");
        AtomicDirectory.replace(target, f -> Files.writeString(f.resolve("step"), "1"));
        assertThrows(RuntimeException.class, () -> AtomicDirectory.replace(target, f -> {
            Files.writeString(f.resolve("step"), "2");
            throw new IOException("disk full");
        }));
        assertEquals("1", Files.readString(target.resolve("step")));
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "only the checkpoint remains");
        }
        AtomicDirectory.replace(target, f -> Files.writeString(f.resolve("step"), "3"));
        assertEquals("3", Files.readString(target.resolve("step")));
    }

    @Test
    void aCrashBetweenTheRenamesIsRecoveredFromThePreviousVersion() throws IOException {
        Path target = dir.resolve("checkpoint");
        Path previous = AtomicDirectory.previousOf(target);
        Files.createDirectories(previous);
        Files.writeString(previous.resolve("step"), "7");
        AtomicDirectory.recover(target);
        assertEquals("7", Files.readString(target.resolve("step")));
        assertFalse(Files.exists(previous));
    }
}
