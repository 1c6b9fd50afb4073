package dev.moe4j.cli.train;

import dev.moe4j.train.checkpoint.RunLock;

import java.nio.file.Path;

/**
 * A second process for {@link TrainCommandTest}: holds a run folder's lock, as a training run does, until its input
 * ends.
 */
public final class HoldRunLock {
    private HoldRunLock() {
    }

    public static void main(String[] args) throws Exception {
        try (RunLock lock = RunLock.acquire(Path.of(args[0]))) {
            System.out.println("held");
            System.out.flush();
            while (System.in.read() >= 0) {
                // wait for the test to close our input
            }
        }
    }
}
