package dev.moe4j.io;

import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Replacing a whole folder (a checkpoint) so that a crash at any moment leaves either the previous folder or the
 * new one complete: write into a temporary folder beside the target, then swap by renames. If the process dies
 * between the two renames, the previous version survives as {@code <target>.previous}; {@link #recover} puts it
 * back.
 */
public final class AtomicDirectory {
    private AtomicDirectory() {
    }

    /** Work to fill the temporary folder. */
    @FunctionalInterface
    public interface Writer {
        void write(Path folder) throws IOException;
    }

    /** Writes a new version of {@code target} through {@code writer} and swaps it in. */
    public static void replace(Path target, Writer writer) {
        Path parent = target.toAbsolutePath().getParent();
        Path temp = parent.resolve("." + target.getFileName() + "." + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + ".tmp");
        Path previous = previousOf(target);
        try {
            Files.createDirectories(temp);
            writer.write(temp);
            recover(target);
            if (Files.exists(target)) {
                deleteTree(previous);
                Files.move(target, previous, StandardCopyOption.ATOMIC_MOVE);
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
            deleteTree(previous);
        } catch (IOException e) {
            deleteTree(temp);
            throw new BadInputException(target + ": cannot write (" + e.getMessage() + ")", e);
        } catch (RuntimeException e) {
            deleteTree(temp);
            throw e;
        }
    }

    /** After a crash between the two renames: brings the previous version back if the target is missing. */
    public static void recover(Path target) throws IOException {
        Path previous = previousOf(target);
        if (!Files.exists(target) && Files.isDirectory(previous)) {
            Files.move(previous, target, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /**
     * Deletes the temporary folders that {@link #replace} left beside {@code target} in processes that died while
     * writing them, and returns them (their sizes as they were). Only for a caller that owns {@code target}
     * exclusively: a temporary folder that another writer is still filling would go too.
     */
    public static List<Abandoned> removeAbandoned(Path target) {
        Path absolute = target.toAbsolutePath().normalize();
        Path parent = absolute.getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            return List.of();
        }
        Pattern temporary = Pattern.compile(Pattern.quote("." + absolute.getFileName() + ".") + "[0-9a-f]+\\.tmp");
        var removed = new ArrayList<Abandoned>();
        try (Stream<Path> siblings = Files.list(parent)) {
            for (Path p : siblings.filter(p -> temporary.matcher(p.getFileName().toString()).matches()
                    && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)).toList()) {
                long bytes = size(p);
                deleteTree(p);
                removed.add(new Abandoned(p, bytes));
            }
        } catch (IOException e) {
            throw new BadInputException(parent + ": cannot list (" + e.getMessage() + ")", e);
        }
        return removed;
    }

    /** A temporary folder removed by {@link #removeAbandoned}, with the bytes its files held. */
    public record Abandoned(Path folder, long bytes) {
    }

    private static long size(Path folder) {
        try (Stream<Path> walk = Files.walk(folder)) {
            return walk.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        } catch (IOException e) {
            return 0;
        }
    }

    static Path previousOf(Path target) {
        return target.resolveSibling(target.getFileName() + ".previous");
    }

    /** Deletes a folder and everything under it, quietly; a missing folder is fine. */
    public static void deleteTree(Path folder) {
        if (!Files.exists(folder)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(folder)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: a leftover temporary folder is harmless
                }
            });
        } catch (IOException ignored) {
            // as above
        }
    }
}
