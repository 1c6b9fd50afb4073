package dev.moe4j.cli.report;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code moe4j report runs/NAME}: the HTML page of an experiment's results. */
@Command(name = "report",
        mixinStandardHelpOptions = true,
        usageHelpWidth = 110,
        description = {"Writes the HTML report of an experiment (runs/NAME/report.html by default) from its "
                + "results.json: loss curves against tokens and time, measurements per variant with every seed, "
                + "load per expert over training, domain and token-type x expert heatmaps, and validation text "
                + "coloured by each token's first-choice expert. One self-contained file that opens offline."})
public final class ReportCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "DIR", description = "An experiment's folder (holding results.json).")
    Path folder;

    @Option(names = "--out", paramLabel = "FILE", description = "Where to write the page (default: DIR/report.html).")
    Path out;

    @Option(names = "--markdown", description = "Print the results as a Markdown table instead (for docs/RESULTS.md).")
    boolean markdown;

    @Override
    public Integer call() {
        if (markdown) {
            spec.commandLine().getOut().print(ReportMarkdown.of(ReportPage.results(folder)));
            spec.commandLine().getOut().flush();
            return 0;
        }
        Path written = ReportPage.write(folder, out != null ? out : folder.resolve(ReportPage.FILE));
        spec.commandLine().getOut().println("wrote " + written);
        spec.commandLine().getOut().flush();
        return 0;
    }
}
