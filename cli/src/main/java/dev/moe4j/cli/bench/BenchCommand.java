package dev.moe4j.cli.bench;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code moe4j bench}: measurements of this machine and of moe4j on it. Each subcommand measures the machine's
 * limits in the same run and reports its figures as fractions of them. Add a sibling by listing it here.
 */
@Command(name = "bench",
        mixinStandardHelpOptions = true,
        description = {"Measures moe4j on this machine against the machine's own limits (peak FMA rate, memory "
                + "bandwidth), measured in the same run.",
                "Run one of the subcommands; see docs/BENCHMARKS.md for figures and how they were taken."},
        subcommands = {
                BenchMatMulCommand.class,
                BenchMoeCommand.class,
                BenchGenerateCommand.class,
                BenchServeCommand.class,
                BenchTrainCommand.class,
                BenchMakeModelCommand.class,
        })
public final class BenchCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
