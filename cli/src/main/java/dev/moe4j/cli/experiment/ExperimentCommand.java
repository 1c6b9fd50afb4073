package dev.moe4j.cli.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.cli.report.ReportPage;
import dev.moe4j.core.BadInputException;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.TrainingRun;
import dev.moe4j.train.experiment.Experiment;
import dev.moe4j.train.experiment.ExperimentRunner;
import dev.moe4j.train.experiment.Experiments;
import dev.moe4j.train.vision.ImageTrainer;
import dev.moe4j.train.vision.VmoeExperiment;
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
                        + "minute on a tiny model (results in runs/NAME-quick).",
                "",
                "vmoe (not part of all: it needs Fashion-MNIST, see moe4j train-vision) trains a dense ViT, a V-MoE and "
                        + "a Soft MoE at equal compute per image, evaluates the V-MoE models at capacity factors 1.0 to "
                        + "0.125 in position order and with batch priority routing, and draws which patches each "
                        + "expert took and which were dropped."})
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

    @Option(names = "--images", paramLabel = "DIR",
            description = "vmoe: the folder of Fashion-MNIST's IDX files (default: the installed package's).")
    Path images;

    @Option(names = "--epochs", paramLabel = "N", defaultValue = "0",
            description = "vmoe: training epochs per run (default: 6; 1 with --quick).")
    int epochs;

    @Option(names = "--limit", paramLabel = "N", defaultValue = "0",
            description = "vmoe: train on the first N images and test on the first N/2 (default: all; 512 with --quick).")
    int limit;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (list) {
            for (Experiment e : Experiments.ALL) {
                out.println(e.name() + ": " + e.title());
                out.println("    claim: " + e.claim());
                out.println("    variants: " + String.join(", ", e.variants(false).stream().map(v -> v.name()).toList()));
            }
            out.println(VmoeExperiment.NAME + ": " + VmoeExperiment.TITLE + " (not part of all)");
            out.println("    claim: " + VmoeExperiment.CLAIM);
            out.println("    variants: dense, vmoe, soft-moe; vmoe at capacity factors 1, 0.5, 0.25, 0.125 in position "
                    + "and batch priority order");
            out.flush();
            return 0;
        }
        if (name == null) {
            throw new BadInputException("name an experiment (" + String.join(", ", Experiments.names())
                    + ", vmoe, or all); --list describes them");
        }
        if (name.equals(VmoeExperiment.NAME)) {
            return vmoe(out);
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

    private int vmoe(PrintWriter out) {
        if (threads > 0) {
            dev.moe4j.core.Parallel.setThreads(threads);
        }
        var options = new VmoeExperiment.Options(runs, images, quick, force, seeds, epochs, limit);
        out.println("experiment vmoe: " + VmoeExperiment.TITLE + (quick ? " (quick)" : ""));
        out.flush();
        Path folder = VmoeExperiment.run(options, new VmoeExperiment.Listener() {
            @Override
            public void message(String text) {
                out.println("  " + text);
                out.flush();
            }

            @Override
            public void step(String run, ImageTrainer.Step s) {
                if (s.step() % 100 == 0 || s.step() == s.totalSteps()) {
                    out.printf(Locale.ROOT, "  %s step %d/%d  loss %.4f  %.0f images/s  dropped %.1f%%%n", run,
                            s.step(), s.totalSteps(), s.loss(), s.imagesPerSecond(), 100 * s.dropped());
                    out.flush();
                }
            }
        });
        Path report = ReportPage.write(folder, folder.resolve(ReportPage.FILE));
        out.println("wrote " + folder.resolve(VmoeExperiment.RESULTS_FILE) + " and " + report);
        out.flush();
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
