package dev.moe4j.train.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.vision.VisionConfig;
import dev.moe4j.model.vision.VisionModelFolder;
import dev.moe4j.model.vision.VisionTransformer;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.train.experiment.Statistics;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code moe4j experiment vmoe}: the V-MoE and Soft MoE papers' claims on Fashion-MNIST at small scale.
 * <ol>
 *   <li>A dense ViT, a V-MoE (top-2 of 8 experts, capacity factor 1.0, batch priority routing) and a Soft MoE (8
 *       experts, slots per image = patches × 2) at equal multiply-adds per image: the dense MLP is 2 × an expert's
 *       width, and Soft MoE's slots are as many as V-MoE's expert choices.</li>
 *   <li>The V-MoE models, trained at capacity 1.0, evaluated at capacity factors 1.0, 0.5, 0.25 and 0.125, the
 *       patches claiming slots in position order or by batch priority routing (Riquelme et al. 2021, section 4.1):
 *       accuracy and the share of patches any expert processed.</li>
 *   <li>For the first test images, each patch's expert and the dropped patches at each capacity and order.</li>
 * </ol>
 * Every variant runs with every seed; a trained model is saved in its own folder and reused by a later run.
 */
public final class VmoeExperiment {
    public static final String NAME = "vmoe";
    public static final String RESULTS_FILE = "results.json";
    public static final String TITLE = "V-MoE and Soft MoE on Fashion-MNIST";
    public static final String CLAIM = "Sparse MoE layers in every other ViT layer beat a dense ViT of equal compute "
            + "per image, Soft MoE more so; with batch priority routing a model trained at capacity 1.0 keeps more of "
            + "its accuracy when evaluated at lower capacity than with position order (Riquelme et al. 2021, "
            + "Puigcerver et al. 2024).";
    public static final double[] CAPACITIES = {1.0, 0.5, 0.25, 0.125};
    /** Test images drawn in the report. */
    static final int SHOWN = 24;
    static final int EVAL_BATCH = 500;

    /**
     * @param data   the IDX folder, null for the installed Fashion-MNIST
     * @param limit  training images (0: all), test images likewise for quick runs
     */
    public record Options(Path runs, Path data, boolean quick, boolean force, int seeds, int epochs, int limit) {
        public Path folder() {
            return runs.resolve(quick ? NAME + "-quick" : NAME);
        }
    }

    /** Hears what the experiment does. */
    public interface Listener {
        void message(String text);

        void step(String run, ImageTrainer.Step step);
    }

    /** A trained variant: its name, description and options. */
    record Variant(String name, String description, VisionModels models) {
    }

    static List<Variant> variants(boolean quick) {
        int width = quick ? 16 : 64, layers = quick ? 2 : 4, heads = quick ? 2 : 4, expert = quick ? 16 : 64;
        int patch = 7, patches = (28 / patch) * (28 / patch), experts = 8, k = 2;
        var dense = new VisionModels(patch, width, layers, heads, expert, "none", experts, k, 0, Priority.SCORE, 1, 0, 1);
        var vmoe = new VisionModels(patch, width, layers, heads, expert, "topk", experts, k, 1.0, Priority.SCORE, 1,
                0.01, 1);
        var soft = new VisionModels(patch, width, layers, heads, expert, "soft", experts, k, 0, Priority.SCORE,
                patches * k / experts, 0, 1);
        return List.of(
                new Variant("dense", "dense ViT, MLP " + k * expert + " wide", dense),
                new Variant("vmoe", "V-MoE: top-" + k + " of " + experts + " experts of " + expert
                        + ", capacity 1.0, batch priority routing", vmoe),
                new Variant("soft-moe", "Soft MoE: " + experts + " experts x " + patches * k / experts
                        + " slots per image", soft));
    }

    private VmoeExperiment() {
    }

    public static Path run(Options o, Listener listener) {
        var splits = FashionMnist.read(o.data());
        int limit = o.limit() > 0 ? o.limit() : o.quick() ? 512 : 0;
        LabelledImages train = limit > 0 ? splits.train().first(limit) : splits.train();
        LabelledImages test = limit > 0 ? splits.test().first(Math.max(SHOWN, limit / 2)) : splits.test();
        int epochs = o.epochs() > 0 ? o.epochs() : o.quick() ? 1 : 6;
        Path folder = o.folder();
        listener.message(String.format(Locale.ROOT, "measuring the peak FMA rate (%s)", "F32 FMAs in registers"));
        double peakBefore = MachineLimits.peakGflops(o.quick() ? 0.05 : 1.0);
        double loadStart = loadAverage();
        ObjectNode results = Json.mapper().createObjectNode();
        results.put("experiment", NAME);
        results.put("title", TITLE);
        results.put("claim", CLAIM);
        results.put("quick", o.quick());
        results.put("epochs", epochs);
        results.put("train_images", train.count());
        results.put("test_images", test.count());
        ArrayNode variants = results.putArray("variants");
        List<VisionTransformer> vmoeModels = new ArrayList<>();
        List<Long> vmoeSeeds = new ArrayList<>();
        double[] rates = new double[0];
        for (Variant v : variants(o.quick())) {
            ObjectNode vn = variants.addObject();
            vn.put("name", v.name());
            vn.put("description", v.description());
            ArrayNode runs = vn.putArray("runs");
            double[] accuracies = new double[o.seeds()];
            for (int s = 0; s < o.seeds(); s++) {
                long seed = s + 1;
                VisionModels m = new VisionModels(v.models().patch(), v.models().width(), v.models().layers(),
                        v.models().heads(), v.models().expertWidth(), v.models().router(), v.models().experts(),
                        v.models().topK(), v.models().capacity(), v.models().priority(), v.models().slots(),
                        v.models().balance(), seed);
                VisionConfig config = m.config(train.size(), train.classes().size());
                vn.put("macs_per_image", ImageTrainer.forwardMacs(config));
                String runName = v.name() + "-s" + seed;
                Path runFolder = folder.resolve(runName);
                Path record = runFolder.resolve("run.json");
                VisionTransformer model;
                ObjectNode rn;
                if (!o.force() && Files.isRegularFile(record) && sameConfig(runFolder, config)) {
                    model = VisionModelFolder.load(runFolder).model();
                    rn = (ObjectNode) Json.read(record);
                    listener.message(runName + ": trained before, loaded");
                } else {
                    listener.message(String.format(Locale.ROOT, "%s: %s, %d epochs of %d images", runName,
                            v.description(), epochs, train.count()));
                    model = new VisionTransformer(config);
                    var settings = new ImageTrainer.Settings(epochs, 128, 2e-3, 0.05,
                            Math.min(200, train.count() / 128), 1.0, seed);
                    var r = ImageTrainer.train(model, train, settings, step -> listener.step(runName, step));
                    rn = Json.mapper().createObjectNode();
                    rn.put("seed", seed);
                    rn.put("steps", r.steps());
                    rn.put("train_seconds", r.seconds());
                    rn.put("train_images_per_s", r.imagesPerSecond());
                    rn.put("final_loss", r.finalLoss());
                    var eval = ImageEvaluation.of(model, test, RoutingPolicy.TRAINED, EVAL_BATCH);
                    rn.put("accuracy", eval.accuracy());
                    ArrayNode perClass = rn.putArray("class_accuracy");
                    for (int c = 0; c < train.classes().size(); c++) {
                        perClass.add(eval.classAccuracy(c));
                    }
                    ArrayNode layers = rn.putArray("layers");
                    for (var l : eval.layers()) {
                        ObjectNode ln = layers.addObject();
                        ln.put("layer", l.layer());
                        ArrayNode loads = ln.putArray("tokens_per_expert");
                        for (long t : l.tokensPerExpert()) {
                            loads.add(t);
                        }
                        ln.put("processed_share", l.processedShare());
                    }
                    VisionModelFolder.save(model, train.preprocessing(), runFolder);
                    AtomicFiles.writeString(record, Json.pretty(rn));
                }
                runs.add(rn);
                accuracies[s] = rn.path("accuracy").asDouble();
                listener.message(String.format(Locale.ROOT, "%s: test accuracy %.2f%%, %.0f training images/s", runName,
                        100 * accuracies[s], rn.path("train_images_per_s").asDouble()));
                if (v.name().equals("vmoe")) {
                    vmoeModels.add(model);
                    vmoeSeeds.add(seed);
                }
            }
            vn.put("mean_accuracy", Statistics.mean(accuracies));
            vn.put("std_accuracy", Statistics.std(accuracies));
        }
        results.set("capacity", capacitySweep(vmoeModels, vmoeSeeds, test, listener));
        results.set("images", patchViews(vmoeModels.getFirst(), test));
        double peakAfter = MachineLimits.peakGflops(o.quick() ? 0.05 : 1.0);
        ObjectNode machine = results.putObject("machine");
        machine.put("peak_gflops", Math.max(peakBefore, peakAfter));
        machine.put("threads", dev.moe4j.core.Parallel.threads());
        machine.put("load_average_start", loadStart);
        machine.put("load_average_end", loadAverage());
        AtomicFiles.writeString(folder.resolve(RESULTS_FILE), Json.pretty(results));
        return folder;
    }

    private static boolean sameConfig(Path runFolder, VisionConfig config) {
        Path file = runFolder.resolve("config.json");
        if (!Files.isRegularFile(file) || !(Json.read(file) instanceof ObjectNode json)) {
            return false;
        }
        json.remove("id2label");
        return json.equals(config.toJson());
    }

    /** Every V-MoE model at every capacity in both orders. */
    private static ArrayNode capacitySweep(List<VisionTransformer> models, List<Long> seeds, LabelledImages test,
                                           Listener listener) {
        ArrayNode out = Json.mapper().createArrayNode();
        for (double factor : CAPACITIES) {
            for (Priority priority : List.of(Priority.POSITION, Priority.SCORE)) {
                ObjectNode cn = out.addObject();
                cn.put("factor", factor);
                cn.put("priority", priority == Priority.SCORE ? "batch priority" : "position");
                ArrayNode runs = cn.putArray("runs");
                double[] acc = new double[models.size()], processed = new double[models.size()];
                for (int i = 0; i < models.size(); i++) {
                    var eval = ImageEvaluation.of(models.get(i), test, policy(factor, priority), EVAL_BATCH);
                    acc[i] = eval.accuracy();
                    processed[i] = eval.processedShare();
                    ObjectNode rn = runs.addObject();
                    rn.put("seed", seeds.get(i));
                    rn.put("accuracy", acc[i]);
                    rn.put("processed_share", processed[i]);
                    rn.put("served_share", eval.layers().stream().mapToDouble(ImageEvaluation.Layer::servedShare)
                            .average().orElse(1));
                }
                cn.put("mean_accuracy", Statistics.mean(acc));
                cn.put("std_accuracy", Statistics.std(acc));
                cn.put("mean_processed_share", Statistics.mean(processed));
                listener.message(String.format(Locale.ROOT, "capacity %.3f, %s: accuracy %.2f%%, %.1f%% of patches processed",
                        factor, cn.path("priority").asText(), 100 * cn.path("mean_accuracy").asDouble(),
                        100 * cn.path("mean_processed_share").asDouble()));
            }
        }
        return out;
    }

    /** The routing V-MoE evaluates with: its capacity rule at {@code factor}, overflowing patches dropped. */
    static RoutingPolicy policy(double factor, Priority priority) {
        return new RoutingPolicy(0, 0, 0, 0, 0, List.of(), List.of(), Capacity.vmoeFactor(factor), Overflow.DROP,
                priority);
    }

    /**
     * Test images spread evenly over the first evaluation batch (position order drops the batch's last images first,
     * so the first images alone would hide it), their pixels and, for each capacity and order, each patch's expert
     * per MoE layer (−1: dropped) and the predicted class, routed within that batch as measured.
     */
    private static ObjectNode patchViews(VisionTransformer model, LabelledImages test) {
        ObjectNode out = Json.mapper().createObjectNode();
        LabelledImages batch = test.first(EVAL_BATCH);
        int shown = Math.min(SHOWN, batch.count()), area = test.size() * test.size();
        int[] chosen = new int[shown];
        for (int j = 0; j < shown; j++) {
            chosen[j] = j * batch.count() / shown;
        }
        out.put("size", test.size());
        out.put("grid", model.config().grid());
        out.put("experts", model.config().moe().orElseThrow().experts());
        ArrayNode classes = out.putArray("classes");
        test.classes().forEach(classes::add);
        ArrayNode pixels = out.putArray("pixels"), labels = out.putArray("labels");
        ArrayNode positions = out.putArray("batch_positions");
        for (int i : chosen) {
            ArrayNode row = pixels.addArray();
            for (int p = 0; p < area; p++) {
                row.add(test.pixel(i, p));
            }
            labels.add(test.label(i));
            positions.add(i);
        }
        out.put("batch", batch.count());
        ArrayNode views = out.putArray("views");
        for (double factor : CAPACITIES) {
            for (Priority priority : List.of(Priority.SCORE, Priority.POSITION)) {
                var eval = ImageEvaluation.of(model, batch, policy(factor, priority), EVAL_BATCH, chosen);
                ObjectNode vn = views.addObject();
                vn.put("factor", factor);
                vn.put("priority", priority == Priority.SCORE ? "batch priority" : "position");
                ArrayNode layers = vn.putArray("layers");
                eval.layers().forEach(l -> layers.add(l.layer()));
                ArrayNode predictions = vn.putArray("predictions"), experts = vn.putArray("experts");
                for (int j = 0; j < shown; j++) {
                    predictions.add(eval.predictions()[chosen[j]]);
                    ArrayNode perLayer = experts.addArray();
                    for (int[] layer : eval.patchExperts()[j]) {
                        ArrayNode patches = perLayer.addArray();
                        for (int e : layer) {
                            patches.add(e);
                        }
                    }
                }
            }
        }
        return out;
    }

    static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    /** The results of a finished experiment. */
    public static JsonNode results(Path folder) {
        return Json.read(folder.resolve(RESULTS_FILE));
    }
}
