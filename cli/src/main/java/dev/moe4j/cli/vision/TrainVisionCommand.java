package dev.moe4j.cli.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Parallel;
import dev.moe4j.model.vision.VisionModelFolder;
import dev.moe4j.model.vision.VisionTransformer;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.train.vision.FashionMnist;
import dev.moe4j.train.vision.ImageEvaluation;
import dev.moe4j.train.vision.ImageTrainer;
import dev.moe4j.train.vision.VisionModels;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code moe4j train-vision}: trains a ViT or V-MoE image classifier on Fashion-MNIST, reports test accuracy per class
 * and what each MoE layer's experts took, and saves the model for {@code moe4j classify}.
 */
@Command(name = "train-vision",
        mixinStandardHelpOptions = true,
        usageHelpWidth = 110,
        description = {"Trains a vision transformer with mixture-of-experts MLPs in every other layer (V-MoE's "
                + "placement) on Fashion-MNIST, then prints the test accuracy (overall and per class), each MoE "
                + "layer's patches per expert and the share processed, training images/s, and saves the model "
                + "folder (config.json with the class names, preprocessor_config.json, model.safetensors) that moe4j "
                + "classify reads.",
                "",
                "The data are Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist; the "
                        + "./moe4j launcher installs it when run as root, or says how) or --data DIR with the four "
                        + "IDX files (gzip-compressed or not)."})
public final class TrainVisionCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--data", paramLabel = "DIR",
            description = "fashion-mnist (the installed package; the default) or a folder of the four IDX files.")
    String data;

    @Option(names = "--limit", paramLabel = "N", defaultValue = "0", description = "Train on the first N images only (0: all).")
    int limit;

    @Option(names = "--router", paramLabel = "KIND", defaultValue = "topk",
            description = "none (dense ViT), topk (V-MoE), expert-choice, soft, dense (default: topk).")
    String router;

    @Option(names = "--experts", paramLabel = "N", defaultValue = "8", description = "Experts per MoE layer (default: 8).")
    int experts;

    @Option(names = "--top-k", paramLabel = "N", defaultValue = "2", description = "Experts per patch; the dense model's MLP is k × expert width (default: 2).")
    int topK;

    @Option(names = "--capacity-factor", paramLabel = "FACTOR", defaultValue = "1.0",
            description = "Top-k: the capacity factor while training (V-MoE's rounding; 0: dropless); expert choice: "
                    + "patches per expert = factor × patches / experts (default: 1.0).")
    double capacity;

    @Option(names = "--priority", paramLabel = "ORDER", defaultValue = "score",
            description = "Which patches claim expert slots first: score (batch priority routing) or position (default: score).")
    String priority;

    @Option(names = "--slots", paramLabel = "N", defaultValue = "1", description = "Soft MoE: slots per expert (default: 1).")
    int slots;

    @Option(names = "--balance", paramLabel = "COEFFICIENT", defaultValue = "0.01", description = "Importance-loss coefficient (default: 0.01).")
    double balance;

    @Option(names = "--patch", paramLabel = "N", defaultValue = "7", description = "Patch side in pixels (default: 7).")
    int patch;

    @Option(names = "--width", paramLabel = "N", defaultValue = "64", description = "Model width (default: 64).")
    int width;

    @Option(names = "--layers", paramLabel = "N", defaultValue = "4", description = "Encoder layers (default: 4).")
    int layers;

    @Option(names = "--heads", paramLabel = "N", defaultValue = "4", description = "Attention heads (default: 4).")
    int heads;

    @Option(names = "--expert-width", paramLabel = "N", defaultValue = "64", description = "Each expert's hidden width (default: 64).")
    int expertWidth;

    @Option(names = "--epochs", paramLabel = "N", defaultValue = "6",
            description = "Passes over the training images (default: 6, as moe4j experiment vmoe).")
    int epochs;

    @Option(names = "--batch", paramLabel = "N", defaultValue = "128", description = "Images per step (default: 128).")
    int batch;

    @Option(names = "--lr", paramLabel = "RATE", defaultValue = "2e-3", description = "Peak learning rate (default: 2e-3).")
    double lr;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "1", description = "Seed of the weights and the order (default: 1).")
    long seed;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "Worker threads (0: all).")
    int threads;

    @Option(names = "--out", paramLabel = "DIR", defaultValue = "runs/fashion-vmoe",
            description = "Where the model is saved (default: runs/fashion-vmoe).")
    Path out;

    @Override
    public Integer call() {
        PrintWriter w = spec.commandLine().getOut();
        if (threads > 0) {
            Parallel.setThreads(threads);
        }
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new BadInputException(out + ": exists and is not a folder");
        }
        var splits = FashionMnist.read(data == null || data.equals("fashion-mnist") ? null : Path.of(data));
        var train = limit > 0 ? splits.train().first(limit) : splits.train();
        var models = new VisionModels(patch, width, layers, heads, expertWidth, router, experts, topK, capacity,
                priority(priority), slots, balance, seed);
        var config = models.config(train.size(), train.classes().size());
        var model = new VisionTransformer(config);
        long params = model.parameters().values().stream().mapToLong(p -> p.value().size()).sum();
        w.printf(Locale.ROOT, "%d training images, %d test; %d patches of %dx%d; %d parameters; %.2f M multiply-adds per image%n",
                train.count(), splits.test().count(), config.patches(), patch, patch, params,
                ImageTrainer.forwardMacs(config) / 1e6);
        w.flush();
        var settings = new ImageTrainer.Settings(epochs, batch, lr, 0.05, Math.min(200, train.count() / batch), 1.0, seed);
        var result = ImageTrainer.train(model, train, settings, s -> {
            if (s.step() % 50 == 0 || s.step() == s.totalSteps()) {
                w.printf(Locale.ROOT, "step %d/%d (epoch %d)  loss %.4f  aux %.4f  %.0f images/s  dropped %.1f%%%n",
                        s.step(), s.totalSteps(), s.epoch(), s.loss(), s.auxLoss(), s.imagesPerSecond(), 100 * s.dropped());
                w.flush();
            }
        });
        var eval = ImageEvaluation.of(model, splits.test(), RoutingPolicy.TRAINED, 500);
        VisionModelFolder.save(model, train.preprocessing(), out);
        VisionReport.print(w, eval, train.classes(), result, ImageTrainer.forwardMacs(config));
        w.println("saved " + out + " (moe4j classify --model " + out + " IMAGE.png)");
        w.flush();
        return 0;
    }

    static Priority priority(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "score" -> Priority.SCORE;
            case "position" -> Priority.POSITION;
            default -> throw new BadInputException("--priority: expected score or position, got '" + name + "'");
        };
    }
}
