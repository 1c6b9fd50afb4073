package dev.moe4j.train.checkpoint;

import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Exclusive ownership of a run's folder while a training process writes it: an operating-system lock on
 * {@code .NAME.lock} beside the folder. The lock file lives beside the folder, not in it, because every checkpoint
 * replaces the folder by renames and a lock file inside would leave with the old folder. The file itself stays after
 * the run (an unlocked file means nothing); deleting it would let a process that opened it just before lock a file
 * that no longer has a name, while a third locks a new one.
 */
public final class RunLock implements AutoCloseable {
    private final FileChannel channel;
    private final FileLock lock;

    private RunLock(FileChannel channel, FileLock lock) {
        this.channel = channel;
        this.lock = lock;
    }

    /** The lock file of the run saved in {@code out}. */
    public static Path file(Path out) {
        Path absolute = out.toAbsolutePath().normalize();
        return absolute.resolveSibling("." + absolute.getFileName() + ".lock");
    }

    /**
     * Takes the run folder {@code out} for this process, or refuses in one line naming it when another process
     * (or another run in this one) holds it. Creates the folder's parent if needed, so an unwritable place is found
     * here, before any work.
     */
    public static RunLock acquire(Path out) {
        Path file = file(out);
        try {
            Files.createDirectories(file.getParent());
        } catch (IOException e) {
            throw new BadInputException("--out " + out + ": cannot create its parent folder " + file.getParent()
                    + " (" + reason(e) + ")");
        }
        FileChannel channel;
        try {
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new BadInputException("--out " + out + ": cannot write in " + file.getParent() + " (" + reason(e)
                    + ")");
        }
        FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (OverlappingFileLockException held) {
            lock = null;
        } catch (IOException e) {
            closeQuietly(channel);
            throw new BadInputException("--out " + out + ": cannot lock " + file + " (" + reason(e) + ")");
        }
        if (lock == null) {
            closeQuietly(channel);
            throw new BadInputException("--out " + out + " is in use by another moe4j train (it holds " + file
                    + "): wait for it to end, or train under another --name");
        }
        return new RunLock(channel, lock);
    }

    @Override
    public void close() {
        try {
            lock.release();
        } catch (IOException ignored) {
            // closing the channel below releases it as well
        }
        closeQuietly(channel);
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing was written through it
        }
    }

    private static String reason(IOException e) {
        return switch (e) {
            case AccessDeniedException denied -> "permission denied";
            case FileAlreadyExistsException f -> "a file is in the way: " + f.getFile();
            case NotDirectoryException f -> "not a folder: " + f.getFile();
            case FileSystemException f when f.getReason() != null -> f.getReason();
            default -> e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        };
    }
}
