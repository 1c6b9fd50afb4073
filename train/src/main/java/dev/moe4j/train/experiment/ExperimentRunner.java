package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.PredictorOptions;
import dev.moe4j.moe.stats.PredictorConfusion;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.TrainingDiverged;
import dev.moe4j.train.TrainingRun;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import dev.moe4j.train.data.TokenCache;
import dev.moe4j.train.data.TokenStream;
import dev.moe4j.train.data.TrainingData;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Runs an {@link Experiment}: every variant with every seed as an in-process {@link TrainingRun}, one after the
 * other, each in its own folder {@code <variant>-s<seed>} under the experiment's folder and all sharing the token
 * cache; then the routing analysis of each trained model ({@link RoutingAnalysis}, {@link CausalEvaluation}), and
 * results.json over all runs ({@link ExperimentResults}).
 *
 * <p>A run whose folder holds a {@code run.json} with the same options is not trained again (unless
 * {@code force}); if only the analysis changed since ({@link #ANALYSIS_VERSION}), the saved model is analysed
 * again. A run whose loss stops being finite is a result ("diverged"), not an error.
 */
public final class ExperimentRunner {
    public static final String RUN_FILE = "run.json";
    public static final String RESULTS_FILE = "results.json";
    /** Raised whenever what the analysis measures changes, so that saved runs are analysed again. */
    static final int ANALYSIS_VERSION = 4;

    /**
     * @param runs     the folder that holds the experiments' folders (runs/)
     * @param dataRoot the folder the experiments' data paths (data/shakespeare, data/multidomain) are relative to
     * @param quick    the tiny budget; its results go to {@code <name>-quick}
     * @param force    train again even runs that are already done
     * @param seeds    seeds 1..seeds for every variant
     * @param cache    the token cache (empty: moe4j train's default)
     * @param threads  worker threads (0: all processors)
     * @param only     the variants to train (empty: all); lets several processes share one sweep, each training
     *                 some variants, after which any of them gathers the results
     * @param partial  gather the results of the variants whose runs are all done even while others are missing
     *                 (results.json then says which it left out), to compare some variants without the whole sweep
     */
    public record Options(Path runs, Path dataRoot, boolean quick, boolean force, int seeds, Optional<Path> cache,
                          int threads, Set<String> only, boolean partial) {
        public Options {
            if (seeds < 1) {
                throw new BadInputException("--seeds must be at least 1, got " + seeds);
            }
            only = Set.copyOf(only);
        }

        public Options(Path runs, Path dataRoot, boolean quick, boolean force, int seeds, Optional<Path> cache,
                       int threads, Set<String> only) {
            this(runs, dataRoot, quick, force, seeds, cache, threads, only, false);
        }

        public Options(Path runs, Path dataRoot, boolean quick, boolean force, int seeds, Optional<Path> cache,
                       int threads) {
            this(runs, dataRoot, quick, force, seeds, cache, threads, Set.of());
        }
    }

    /** Hears what the runner does; every method has an empty default. */
    public interface Listener {
        default void message(String text) {
        }

        /** @param index 1-based among {@code total} runs */
        default void runStarting(String run, int index, int total, String description) {
        }

        default void step(String run, StepMetrics metrics, TrainingRun.Progress progress) {
        }

        /** @param skipped true when the run was already done (its saved record is reused) */
        default void runFinished(String run, JsonNode record, boolean skipped) {
        }
    }

    private ExperimentRunner() {
    }

    /** The folder of an experiment's runs and results. */
    public static Path folder(Experiment e, Options o) {
        return o.runs().resolve(e.name() + (o.quick() ? "-quick" : ""));
    }

    /**
     * Runs what is not done yet (of the variants in {@code o.only()}, when given), then writes results.json and
     * returns it; empty when runs of other variants are still missing, so that there is nothing to gather yet.
     */
    public static Optional<ObjectNode> run(Experiment experiment, Options o, Listener listener) {
        Path folder = folder(experiment, o);
        List<Variant> variants = experiment.variants(o.quick());
        var names = variants.stream().map(Variant::name).toList();
        for (String wanted : o.only()) {
            if (!names.contains(wanted)) {
                throw new BadInputException("--only: " + experiment.name() + " has no variant '" + wanted
                        + "' (expected some of " + String.join(", ", names) + ")");
            }
        }
        var definitions = new LinkedHashMap<String, Map<String, String>>();
        for (Variant v : variants) {
            for (int seed = 1; seed <= o.seeds(); seed++) {
                var d = definition(experiment, v, seed, o.quick());
                TrainConfig.parse(trainValues(d, folder, o)); // every variant's options are checked before any run
                definitions.put(v.name() + "-s" + seed, d);
            }
        }
        double[] started = {loadAverage()};
        var records = new LinkedHashMap<String, JsonNode>();
        int index = 0;
        // Seed-major: an interrupted sweep leaves every variant's first seed done before any second one.
        var missing = new ArrayList<String>();
        for (int seed = 1; seed <= o.seeds(); seed++) {
            for (Variant v : variants) {
                String name = v.name() + "-s" + seed;
                index++;
                if (!o.only().isEmpty() && !o.only().contains(v.name())) {
                    savedRun(folder.resolve(name), definitions.get(name))
                            .filter(ExperimentRunner::analysedByThisVersion).ifPresentOrElse(
                            r -> records.put(name, r), () -> missing.add(name));
                    continue;
                }
                records.put(name, runOne(experiment, v, seed, definitions.get(name), folder.resolve(name), o,
                        listener, name, index, definitions.size()));
            }
        }
        List<String> leftOut = variants.stream().map(Variant::name)
                .filter(v -> missing.stream().anyMatch(run -> run.startsWith(v + "-s"))).toList();
        if (!missing.isEmpty() && !o.partial()) {
            listener.message("results.json is written once every run is done; still missing: "
                    + String.join(", ", missing));
            return Optional.empty();
        }
        if (!leftOut.isEmpty()) {
            listener.message("results.json leaves out the variants not done yet: " + String.join(", ", leftOut));
        }
        ObjectNode results = ExperimentResults.aggregate(experiment, variants.stream()
                        .filter(v -> !leftOut.contains(v.name())).toList(), o, records,
                new double[] {started[0], loadAverage()});
        if (o.partial()) {
            results.put("partial", !leftOut.isEmpty());
            leftOut.forEach(results.putArray("left_out")::add);
        }
        try {
            Files.createDirectories(folder);
        } catch (java.io.IOException e) {
            throw new BadInputException(folder + ": cannot create (" + e.getMessage() + ")");
        }
        AtomicFiles.writeString(folder.resolve(RESULTS_FILE), Json.pretty(results) + "\n");
        return Optional.of(results);
    }

    /** The saved record of a run trained with this definition, if there is one (whatever analysed it). */
    private static Optional<JsonNode> savedRun(Path dir, Map<String, String> definition) {
        Path file = dir.resolve(RUN_FILE);
        if (!Files.isRegularFile(file)) {
            return Optional.empty();
        }
        JsonNode saved = Json.read(file);
        return sameSettings(saved, definition) ? Optional.of(saved) : Optional.empty();
    }

    /** Whether a saved record carries this version's analysis, so that it is reused as it is. */
    private static boolean analysedByThisVersion(JsonNode saved) {
        return saved.path("analysis_version").asInt() == ANALYSIS_VERSION;
    }

    /** A variant's full option map for one seed, before paths are made absolute: what identifies the run. */
    static Map<String, String> definition(Experiment e, Variant v, long seed, boolean quick) {
        var d = new LinkedHashMap<>(e.resolve(quick).values());
        v.settings().forEach((key, value) -> {
            if (TrainSettings.find(key).isEmpty()) {
                throw new IllegalArgumentException(e.name() + "/" + v.name() + ": unknown option " + key);
            }
            d.put(key, value);
        });
        d.put("seed", Long.toString(seed));
        return d;
    }

    /** The options a run is started with: its definition, with data under the data root, its folder and cache. */
    private static Map<String, String> trainValues(Map<String, String> definition, Path folder, Options o) {
        var values = new LinkedHashMap<>(definition);
        var paths = new ArrayList<String>();
        for (String p : values.get("data").split(",")) {
            paths.add(o.dataRoot().resolve(p.strip()).toString());
        }
        values.put("data", String.join(",", paths));
        values.put("out", folder.toString());
        values.put("name", folder.getFileName().toString());
        o.cache().ifPresent(c -> values.put("cache", c.toString()));
        values.put("threads", Integer.toString(o.threads()));
        return values;
    }

    private static JsonNode runOne(Experiment experiment, Variant variant, long seed, Map<String, String> definition,
                                   Path dir, Options o, Listener listener, String name, int index, int total) {
        Path file = dir.resolve(RUN_FILE);
        JsonNode saved = o.force() ? null : savedRun(dir, definition).orElse(null);
        if (saved != null && analysedByThisVersion(saved)) {
            listener.runFinished(name, saved, true);
            return saved;
        }
        TrainConfig config = TrainConfig.parse(trainValues(definition, dir.getParent().resolve(dir.getFileName()), o));
        if (saved != null && saved.path("status").asText().equals("finished") && RunCheckpoint.exists(dir)) {
            listener.message(name + ": analysing the saved model again (the analysis changed)");
            ObjectNode record = saved.deepCopy();
            record.set("analysis", analyse(dir, config, experiment, listener));
            record.put("analysis_version", ANALYSIS_VERSION);
            AtomicFiles.writeString(file, Json.pretty(record) + "\n");
            listener.runFinished(name, record, false);
            return record;
        }
        listener.runStarting(name, index, total, variant.label() + ", seed " + seed);
        AtomicDirectory.deleteTree(dir);
        double before = loadAverage();
        long diverged = -1;
        try {
            TrainingRun.run(config, new TrainingRun.Listener() {
                @Override
                public void message(String text) {
                    listener.message(text);
                }

                @Override
                public void step(StepMetrics metrics, TrainingRun.Progress progress) {
                    listener.step(name, metrics, progress);
                }
            });
        } catch (TrainingDiverged d) {
            diverged = d.step();
            listener.message(name + ": diverged at step " + d.step() + " (loss " + d.loss() + ")");
        }
        RunMetrics metrics = RunMetrics.read(dir.resolve(RunCheckpoint.METRICS));
        ObjectNode record = RunRecord.of(experiment.name(), variant, seed, definition, metrics, diverged,
                new double[] {before, loadAverage()});
        if (diverged < 0) {
            record.set("analysis", analyse(dir, config, experiment, listener));
            // The optimizer's moments (twice the model's size) only serve --resume, which experiments never do.
            AtomicFiles.deleteQuietly(dir.resolve(RunCheckpoint.OPTIMIZER));
        }
        record.put("analysis_version", ANALYSIS_VERSION);
        AtomicFiles.writeString(file, Json.pretty(record) + "\n");
        listener.runFinished(name, record, false);
        return record;
    }

    private static boolean sameSettings(JsonNode saved, Map<String, String> definition) {
        var s = saved.path("settings");
        if (s.size() != definition.size()) {
            return false;
        }
        for (var e : definition.entrySet()) {
            if (!s.path(e.getKey()).asText("\u0000").equals(e.getValue())) {
                return false;
            }
        }
        return true;
    }

    /** Routing on the validation text and the causal loss, of the model saved in {@code dir}. */
    private static ObjectNode analyse(Path dir, TrainConfig config, Experiment experiment, Listener listener) {
        TokenCache cache = config.data().cache().map(TokenCache::new).orElseGet(TokenCache::defaultCache);
        TrainingData data = TrainingData.prepare(config.data().paths(), config.data().validFraction(),
                Optional.of(dir.resolve("tokenizer.json")), config.data().vocab(), cache, text -> { });
        int context = config.data().context();
        try (TransformerModel model = ModelLoader.load(dir)) {
            var options = new RoutingAnalysis.Options(context, config.optimiser().batch(),
                    experiment.domains() ? 16 * context : 32 * context, experiment.domains() ? 96 : 320);
            ObjectNode analysis = RoutingAnalysis.analyse(model.transformer(), data.tokenizer(), data.validation(),
                    options);
            int[][] sequences = spread(data.validation(), context, 8);
            if (sequences.length > 0) {
                causal(analysis.putObject("causal"), dir, model, sequences);
            }
            return analysis;
        } catch (Exception e) {
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException(dir + ": closing the model failed", e);
        }
    }

    /**
     * The causal loss of the saved model against the same windows routed as in training. Expert choice is loaded a
     * second time to route each batch by its experts' top-C, and its causal choices on the windows are compared with
     * those selections per layer; a model with a predictor also decodes by its thresholds, which the same training
     * kept, so that both causal decodings are measured on one network, and by its predictor's top-k.
     */
    private static void causal(ObjectNode c, Path dir, TransformerModel model, int[][] sequences) {
        ModelConfig config = model.config();
        MoeConfig moe = config.moe().filter(m -> m.router() == RouterKind.EXPERT_CHOICE).orElse(null);
        CausalEvaluation.Losses losses;
        if (moe == null) {
            losses = CausalEvaluation.of(model.transformer(), model.transformer(), sequences);
        } else {
            c.put("expert_choice_decode", moe.expertChoiceDecode().name().toLowerCase(java.util.Locale.ROOT));
            try (TransformerModel batch = loadDecoding(dir, config, moe.toBuilder()
                    .expertChoiceDecode(ExpertChoiceDecode.BATCH_TOP_C).build())) {
                losses = CausalEvaluation.of(model.transformer(), batch.transformer(), sequences);
                agreement(c.putArray("agreement"), CausalEvaluation.agreement(model.transformer(),
                        batch.transformer(), sequences), model.transformer().moeLayerIndices());
                if (moe.expertChoiceDecode() == ExpertChoiceDecode.PREDICTOR) {
                    decodedAlso(c, "threshold", dir, config, moe.toBuilder()
                            .expertChoiceDecode(ExpertChoiceDecode.THRESHOLD).build(), batch, sequences);
                    // A 0.5 cut does not promise a token the experts it gets on average in training (the capacity
                    // factor); the top-k by prediction with that k does.
                    PredictorOptions p = moe.predictor().orElseThrow();
                    if (p.topK() == 0 && moe.capacity().kind() == Capacity.Kind.FACTOR) {
                        int k = (int) Math.max(1, Math.min(moe.experts(), Math.round(moe.capacity().factor())));
                        c.put("predictor_top_k", k);
                        decodedAlso(c, "predictor_top_k", dir, config, moe.toBuilder().predictor(
                                new PredictorOptions(p.width(), p.stopGradient(), k, p.coefficient())).build(), batch,
                                sequences);
                    }
                }
            }
        }
        c.put("tokens", losses.tokens());
        JsonNumbers.put(c, "causal_loss", losses.causal());
        JsonNumbers.put(c, "batch_loss", losses.batch());
    }

    private static void agreement(ArrayNode out, List<PredictorConfusion> layers, List<Integer> indices) {
        for (int l = 0; l < layers.size(); l++) {
            ObjectNode n = out.addObject();
            n.put("layer", indices.get(l));
            JsonNumbers.put(n, "accuracy", layers.get(l).accuracy());
            JsonNumbers.put(n, "precision", layers.get(l).precision());
            JsonNumbers.put(n, "recall", layers.get(l).recall());
        }
    }

    /** The causal loss of the saved weights decoded as {@code moe} says, and its choices against the batch's. */
    private static void decodedAlso(ObjectNode c, String label, Path dir, ModelConfig config, MoeConfig moe,
                                    TransformerModel batch, int[][] sequences) {
        try (TransformerModel other = loadDecoding(dir, config, moe)) {
            JsonNumbers.put(c, label + "_causal_loss", CausalEvaluation.causal(other.transformer(), sequences));
            agreement(c.putArray(label + "_agreement"), CausalEvaluation.agreement(other.transformer(),
                    batch.transformer(), sequences), other.transformer().moeLayerIndices());
        }
    }

    private static TransformerModel loadDecoding(Path dir, ModelConfig config, MoeConfig moe) {
        return ModelLoader.load(dir, config.toBuilder().moe(moe).build(), CpuBackend.INSTANCE, WeightMemory.AUTO);
    }

    /** {@code count} windows of {@code context} tokens spread evenly over the stream (fewer if it is short). */
    static int[][] spread(TokenStream stream, int context, int count) {
        int windows = stream.length() / context;
        int n = Math.min(count, windows);
        int[][] out = new int[n][];
        for (int i = 0; i < n; i++) {
            int start = (int) ((long) i * windows / n) * context;
            out[i] = java.util.Arrays.copyOfRange(stream.tokens(), start, start + context);
        }
        return out;
    }

    /** The system's load average over the last minute (NaN where the platform has none). */
    static double loadAverage() {
        double v = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return v < 0 ? Double.NaN : v;
    }
}
