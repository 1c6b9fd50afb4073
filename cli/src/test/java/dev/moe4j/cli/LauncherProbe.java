package dev.moe4j.cli;

/**
 * The main class of the stand-in jar that {@link LauncherTest} runs through the real {@code moe4j} launcher: it takes
 * back the launcher's standard error as moe4j's Main does, then writes lines to stderr and stdout by turns.
 */
public final class LauncherProbe {
    private LauncherProbe() {
    }

    public static void main(String[] args) {
        LauncherStderr.restore();
        int lines = Integer.parseInt(args[0]);
        for (int i = 0; i < lines; i++) {
            System.err.println("err " + i);
            System.err.flush();
            System.out.println("out " + i);
            System.out.flush();
        }
    }
}
