package dev.moe4j.io;

import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writing files so that a reader never sees a partial one: write under a temporary name beside the target, then
 * move it into place (atomically where the file system can). Temporary files are created with the default
 * permissions (the umask applies), unlike {@link Files#createTempFile}, which makes them private to the owner.
 */
public final class AtomicFiles {
    private AtomicFiles() {
    }

    /** Creates an empty temporary file in the target's folder (creating the folder if needed). */
    public static Path temporaryBeside(Path target) {
        Path folder = target.toAbsolutePath().getParent();
        try {
            Files.createDirectories(folder);
            for (int attempt = 0; ; attempt++) {
                Path temp = folder.resolve("." + target.getFileName() + "."
                        + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + ".tmp");
                try {
                    return Files.createFile(temp);
                } catch (FileAlreadyExistsException e) {
                    if (attempt > 100) {
                        throw e;
                    }
                }
            }
        } catch (IOException e) {
            throw new BadInputException(target + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Moves a finished temporary file onto its target, replacing what was there. */
    public static void commit(Path temp, Path target) {
        try {
            try {
                Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            deleteQuietly(temp);
            throw new BadInputException(target + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Writes text to a temporary file beside {@code target} and returns it, for a later {@link #commit}. */
    public static Path writeTemporary(Path target, String text) {
        Path temp = temporaryBeside(target);
        try {
            Files.writeString(temp, text);
            return temp;
        } catch (IOException e) {
            deleteQuietly(temp);
            throw new BadInputException(target + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Writes text to {@code target} atomically. */
    public static void writeString(Path target, String text) {
        commit(writeTemporary(target, text), target);
    }

    /** Removes a temporary file after a failure, keeping the original failure as the one reported. */
    public static void deleteQuietly(Path temp) {
        if (temp != null) {
            try {
                Files.deleteIfExists(temp);
            } catch (IOException ignored) {
                // The failure that led here is the one worth reporting.
            }
        }
    }
}
