package dev.moe4j.cli.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.report.ReportPage;
import dev.moe4j.core.BadInputException;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.TrainingRun;
import dev.moe4j.train.experiment.Experiment;
import dev.moe4j.train.experiment.ExperimentRunner;
import dev.moe4j.train.experiment.Experiments;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code moe4j experiment NAME}: runs one of the experiments that test the MoE papers' claims at small scale (a
 * sweep of training runs, two seeds each), then writes results.json and the HTML report in runs/NAME.
 */
@Command(name = "experiment",
        mixinStandardHelpOptions = true,
        usageHelpWidth = 110,
        description = {"Runs an experiment that tests a claim of the MoE literature: a sweep of moe4j train runs "
                + "(every variant with every seed, in this process, one after the other), then writes "
                + "runs/NAME/results.json (per variant: mean, spread and per-seed values) and runs/NAME/report.html.",
                "",
                "Experiments: moe-vs-dense, routing, balance, capacity, granularity, stability, specialisation, or "
                        + "all (in that order). Runs already done with the same options are not trained again. "
                        + "The full suite takes under two hours on 2 cores; --quick runs each in seconds to a "
                        + "minute on a tiny model (results in runs/NAME-quick)."})
public final class ExperimentCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "NAME", description = "The experiment, or all.")
    String name;

    @Option(names = "--list", description = "List the experiments and the claims they test.")
    boolean list;

    @Option(names = "--quick", description = "A tiny model and a few steps: checks the pipeline, measures nothing.")
    boolean quick;

    @Option(names = "--force", description = "Train again runs that are already done.")
    boolean force;

    @Option(names = "--seeds", paramLabel = "N", defaultValue = "2", description = "Seeds per variant (default: 2).")
    int seeds;

    @Option(names = "--runs", paramLabel = "DIR", defaultValue = "runs",
            description = "Where the experiments' folders go (default: runs).")
    Path runs;

    @Option(names = "--data-root", paramLabel = "DIR", defaultValue = ".",
            description = "The folder that holds data/shakespeare and data/multidomain (default: .).")
    Path dataRoot;

    @Option(names = "--cache", paramLabel = "DIR", description = "Token cache (default: $MOE4J_CACHE or ~/.cache/moe4j).")
    Path cache;

    @Option(names = "--only", paramLabel = "VARIANT", split = ",",
            description = "Train only these variants of one experiment (so that several processes can share a sweep); "
                    + "results.json and the report are written once every variant's runs are done.")
    List<String> only = List.of();

    @Option(names = "--partial", description = "Write results.json and the report from the variants whose runs are "
            + "all done, leaving out (and naming) the others: with --only, a comparison of some variants without "
            + "the whole sweep.")
    boolean partial;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "Worker threads (0: all).")
    int threads;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (list) {
            for (Experiment e : Experiments.ALL) {
                out.println(e.name() + ": " + e.title());
                out.println("    claim: " + e.claim());
                out.println("    variants: " + String.join(", ", e.variants(false).stream().map(v -> v.name()).toList()));
            }
            out.flush();
            return 0;
        }
        if (name == null) {
            throw new BadInputException("name an experiment (" + String.join(", ", Experiments.names())
                    + ", or all); --list describes them");
        }
        List<Experiment> chosen = new ArrayList<>();
        if (name.equals("all")) {
            chosen.addAll(Experiments.ALL);
        } else {
            chosen.add(Experiments.named(name).orElseThrow(() -> new BadInputException("unknown experiment '" + name
                    + "' (expected one of " + String.join(", ", Experiments.names()) + ", or all)")));
        }
        if (!only.isEmpty() && chosen.size() != 1) {
            throw new BadInputException("--only names variants of one experiment, not of all");
        }
        var options = new ExperimentRunner.Options(runs, dataRoot, quick, force, seeds, Optional.ofNullable(cache),
                threads, java.util.Set.copyOf(only), partial);
        for (Experiment e : chosen) {
            Path folder = ExperimentRunner.folder(e, options);
            out.println("experiment " + e.name() + ": " + e.title() + (quick ? " (quick)" : ""));
            out.flush();
            if (ExperimentRunner.run(e, options, new Progress(out)).isPresent()) {
                Path report = ReportPage.write(folder, folder.resolve(ReportPage.FILE));
                out.println("wrote " + folder.resolve(ExperimentRunner.RESULTS_FILE) + " and " + report);
            }
            out.flush();
        }
        return 0;
    }

    /** A line per run started and finished, and one every 50 steps in between. */
    private static final class Progress implements ExperimentRunner.Listener {
        private final PrintWriter out;

        Progress(PrintWriter out) {
            this.out = out;
        }

        @Override
        public void message(String text) {
            out.println("  " + text);
            out.flush();
        }

        @Override
        public void runStarting(String run, int index, int total, String description) {
            out.printf(Locale.ROOT, "[%d/%d] %s (%s)%n", index, total, run, description);
            out.flush();
        }

        @Override
        public void step(String run, StepMetrics m, TrainingRun.Progress p) {
            if (p.step() % 50 == 0) {
                String routing = m.routing().isEmpty() ? "" : String.format(Locale.ROOT, "  load CV %.2f  dropped %.1f%%",
                        m.meanLoadCv(), 100 * m.meanDropped());
                out.printf(Locale.ROOT, "  step %d/%d  loss %.4f  %.0f tok/s%s%n", p.step(), p.totalSteps(), m.loss(),
                        m.tokensPerSecond(), routing);
                out.flush();
            }
        }

        @Override
        public void runFinished(String run, JsonNode r, boolean skipped) {
            out.printf(Locale.ROOT, "  %s: %s%s, val loss %s, causal %s, %.0f s%n", run, r.path("status").asText(),
                    skipped ? " (done before)" : "", number(r.path("final_val_loss")),
                    number(r.path("analysis").path("causal").path("causal_loss")), r.path("wall_s").asDouble());
            out.flush();
        }

        private static String number(JsonNode n) {
            return n.isNumber() ? String.format(Locale.ROOT, "%.4f", n.asDouble()) : "-";
        }
    }
}
