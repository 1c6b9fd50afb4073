package dev.moe4j.cli.train;

import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.TrainingRun;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Renders a training run for people: on a terminal one progress line redrawn in place (bar, step, loss, tokens/s,
 * expert-load CV, dropped share, ETA); otherwise a line every {@code logEvery} steps. Evaluations, checkpoints and
 * samples get lines of their own.
 */
final class TrainProgress implements TrainingRun.Listener {
    private static final int BAR = 24;

    private final PrintWriter out;
    private final boolean terminal;
    private final int logEvery;
    private boolean lineOpen;
    private int lastWidth;

    TrainProgress(PrintWriter out, boolean terminal, int logEvery) {
        this.out = out;
        this.terminal = terminal;
        this.logEvery = Math.max(1, logEvery);
    }

    @Override
    public void message(String text) {
        line("moe4j: " + text);
    }

    @Override
    public void started(TrainingRun.Start s) {
        line("model: " + s.model());
        line(String.format(Locale.ROOT, "parameters: %s total, %s active per token", count(s.totalParameters()),
                count(s.activeParameters())));
        line(String.format(Locale.ROOT, "data: %s: %s training tokens, %s validation tokens; %s tokens per step",
                s.data(), count(s.trainTokens()), count(s.validTokens()), count(s.tokensPerStep())));
        line((s.fromStep() > 0 ? "resuming at step " + s.fromStep() + " of " : "training ")
                + (s.totalSteps() > 0 ? s.totalSteps() + " steps" : "for the time budget") + ", saving to " + s.out());
    }

    @Override
    public void step(StepMetrics m, TrainingRun.Progress p) {
        String text = status(m, p);
        if (terminal) {
            String padded = text + " ".repeat(Math.max(0, lastWidth - text.length()));
            out.print("\r" + padded);
            out.flush();
            lastWidth = text.length();
            lineOpen = true;
        } else if (p.step() % logEvery == 0 || p.step() == 1 || (p.totalSteps() > 0 && p.step() == p.totalSteps())) {
            line(text);
        }
    }

    static String status(StepMetrics m, TrainingRun.Progress p) {
        String steps;
        String bar = "";
        if (p.totalSteps() > 0) {
            int filled = (int) Math.min(BAR, (long) BAR * p.step() / p.totalSteps());
            bar = "[" + "#".repeat(filled) + ".".repeat(BAR - filled) + "] ";
            steps = p.step() + "/" + p.totalSteps();
        } else {
            steps = Long.toString(p.step());
        }
        String moe = m.routing().isEmpty() ? "" : String.format(Locale.ROOT, " | load CV %.2f | dropped %.1f%%",
                m.meanLoadCv(), 100 * m.meanDropped());
        // The estimate is unknown for the first steps (RemainingTime); a guess then would mislead.
        String eta = Double.isNaN(p.etaSeconds()) ? "" : " | ETA " + duration(p.etaSeconds());
        return String.format(Locale.ROOT, "%sstep %s | loss %.4f | %s tok/s%s | lr %.2e%s", bar, steps,
                m.loss(), count(Math.round(m.tokensPerSecond())), moe, m.lr(), eta);
    }

    @Override
    public void evaluated(long step, double validLoss) {
        line(String.format(Locale.ROOT, "step %d: validation loss %.4f (perplexity %.1f)", step, validLoss,
                Math.exp(validLoss)));
    }

    @Override
    public void saved(Path folder, long step) {
        line("saved " + folder + " at step " + step);
    }

    @Override
    public void sample(String text) {
        line("--- sample ---");
        for (String l : text.split("\n", -1)) {
            line(l);
        }
    }

    /** The closing lines: how the run ended, and how to use what it saved. */
    void finish(TrainingRun.Summary s) {
        line("---");
        // No validation loss when the validation split was too short to evaluate on (said when the run started).
        line(String.format(Locale.ROOT, "trained %d steps in %s: train loss %.4f", s.steps(), duration(s.seconds()),
                s.trainLoss()) + (Double.isNaN(s.validLoss()) ? ", no validation loss"
                : String.format(Locale.ROOT, ", validation loss %.4f", s.validLoss())));
        // a LoRA run saves its adapters alone (PEFT's format), which run beside the model they were trained on
        java.nio.file.Path adapterConfig = s.out().resolve("adapter_config.json");
        String base = java.nio.file.Files.isRegularFile(adapterConfig)
                ? dev.moe4j.io.json.Json.read(adapterConfig).path("base_model_name_or_path").asText(null) : null;
        String model = base == null ? s.out().toString() : base + " --adapter " + s.out();
        line("saved " + s.out() + (base == null ? " (" + s.family() + " format" : " (LoRA adapters in PEFT's format")
                + ", with tokenizer.json and metrics.jsonl)");
        String prompt = s.prompt().isBlank() ? "Hello" : s.prompt().strip();
        line("generate from it:  ./moe4j generate --model " + model + " --prompt '" + prompt.replace("'", "'\\''")
                + "' --max-tokens 200");
        out.flush();
    }

    private void line(String text) {
        if (lineOpen) {
            out.println();
            lineOpen = false;
            lastWidth = 0;
        }
        out.println(text);
        out.flush();
    }

    static String count(long n) {
        if (n >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.2fB", n / 1e9);
        }
        if (n >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.2fM", n / 1e6);
        }
        if (n >= 10_000L) {
            return String.format(Locale.ROOT, "%.1fk", n / 1e3);
        }
        return Long.toString(n);
    }

    static String duration(double seconds) {
        if (!Double.isFinite(seconds)) {
            return "?";
        }
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, s % 3600 / 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
