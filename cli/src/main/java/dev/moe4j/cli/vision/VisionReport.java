package dev.moe4j.cli.vision;

import dev.moe4j.train.vision.ImageEvaluation;
import dev.moe4j.train.vision.ImageTrainer;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/** The lines a vision run ends with: accuracy, per class, per MoE layer and expert, speed. */
final class VisionReport {
    private VisionReport() {
    }

    static void print(PrintWriter w, ImageEvaluation e, List<String> classes, ImageTrainer.Result r, long macs) {
        w.printf(Locale.ROOT, "test accuracy %.2f%% (%d/%d)%n", 100 * e.accuracy(), e.correct(), e.images());
        for (int c = 0; c < classes.size(); c++) {
            w.printf(Locale.ROOT, "  %-12s %.1f%%%n", classes.get(c), 100 * e.classAccuracy(c));
        }
        for (var l : e.layers()) {
            long total = 0;
            for (long t : l.tokensPerExpert()) {
                total += t;
            }
            var shares = new StringBuilder();
            for (long t : l.tokensPerExpert()) {
                shares.append(String.format(Locale.ROOT, " %.1f", 100.0 * t / Math.max(1, total)));
            }
            w.printf(Locale.ROOT, "  MoE layer %d: patches per expert (%%):%s; processed %.1f%% of patches, %.1f%% of choices%n",
                    l.layer(), shares, 100 * l.processedShare(), 100 * l.servedShare());
        }
        w.printf(Locale.ROOT, "training: %d steps, %.0f images/s (%.2f GFLOP/s of forward + backward at 3 x %.2f M multiply-adds per image)%n",
                r.steps(), r.imagesPerSecond(), r.imagesPerSecond() * 6 * macs / 1e9, macs / 1e6);
    }
}
