package dev.moe4j.cli.bench;

import dev.moe4j.core.Parallel;
import dev.moe4j.core.perf.MachineLimits;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Options every {@code moe4j bench} subcommand shares (a picocli mixin). */
public final class BenchOptions {
    @CommandLine.Spec(CommandLine.Spec.Target.MIXEE)
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--threads", paramLabel = "N",
            description = "Worker threads (default: all processors). Limits and kernels use the same count.")
    Integer threads;

    @Option(names = "--json", description = "Print the results as one JSON object instead of a table.")
    boolean json;

    @Option(names = "--quick",
            description = "A fast, rough run (short trials, small buffers) to check that the command works; "
                    + "its figures are not meaningful.")
    boolean quick;

    /** Applies --threads; a count below 1 is the user's mistake. */
    public void applyThreads() {
        if (threads != null) {
            if (threads < 1) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--threads must be at least 1, got " + threads);
            }
            Parallel.setThreads(threads);
        }
    }

    /** --quick's sizes: short trials over small buffers, enough to see that a command works. */
    private static final double QUICK_SECONDS = 0.02;
    private static final long QUICK_BUFFER_BYTES = 16L << 20;
    private static final long QUICK_SLICE_BYTES = 4L << 20;

    /** The machine's limits, measured now (quickly and roughly with --quick). */
    public MachineLimits measureLimits() {
        return quick ? MachineLimits.measure(QUICK_SECONDS, QUICK_BUFFER_BYTES, QUICK_SLICE_BYTES)
                : MachineLimits.measure();
    }

    /** Memory's streaming read rate alone, measured now over about {@code seconds} (quickly and roughly with --quick). */
    public MachineLimits.Bandwidth measureBandwidth(double seconds) {
        return quick ? MachineLimits.readBandwidth(QUICK_BUFFER_BYTES, QUICK_SLICE_BYTES, QUICK_SECONDS)
                : MachineLimits.readBandwidth(MachineLimits.DEFAULT_BUFFER_BYTES, MachineLimits.DEFAULT_SLICE_BYTES,
                seconds);
    }

    public boolean json() {
        return json;
    }

    public boolean quick() {
        return quick;
    }
}
