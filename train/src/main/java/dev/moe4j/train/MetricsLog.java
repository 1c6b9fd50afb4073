package dev.moe4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.moe.stats.PredictorConfusion;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A run's metrics as JSON lines: one {@code "type": "step"} record per optimiser step (losses, learning rate,
 * gradient norm, tokens/s, each MoE layer's routing) and one {@code "type": "eval"} record per evaluation. Lines are
 * appended and flushed one by one, so a crash loses at most the line being written; a resumed run first drops the
 * lines written after its checkpoint.
 */
public final class MetricsLog {
    private final Path file;

    public MetricsLog(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    /** One step's record. */
    public static ObjectNode record(StepMetrics m, double elapsedSeconds) {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("type", "step");
        o.put("step", m.step());
        o.put("loss", m.loss());
        o.put("ce", m.crossEntropy());
        o.put("aux", m.auxiliary());
        o.put("lr", m.lr());
        o.put("grad_norm", m.gradNorm());
        o.put("tokens", m.tokens());
        o.put("tokens_per_s", m.tokensPerSecond());
        o.put("elapsed_s", elapsedSeconds);
        var layers = o.putArray("routing");
        for (StepMetrics.LayerRouting r : m.routing()) {
            ObjectNode l = layers.addObject();
            l.put("layer", r.layer());
            l.put("load_cv", r.loadCv());
            l.put("dropped", r.dropped());
            l.put("max_violation", r.maxViolation());
            l.put("entropy", r.entropy());
            var load = l.putArray("tokens_per_expert");
            for (int t : r.tokensPerExpert()) {
                load.add(t);
            }
            if (r.predictor() != null) {
                predictor(l.putObject("predictor"), r.predictor());
            }
        }
        return o;
    }

    /**
     * An expert-choice predictor's step: its (token, expert) counts against the batch's selections, which a window
     * of steps sums, and the accuracy, precision and recall they give (null where undefined).
     */
    private static void predictor(ObjectNode o, PredictorConfusion c) {
        o.put("true_positives", c.truePositives());
        o.put("false_positives", c.falsePositives());
        o.put("false_negatives", c.falseNegatives());
        o.put("true_negatives", c.trueNegatives());
        ratio(o, "accuracy", c.accuracy());
        ratio(o, "precision", c.precision());
        ratio(o, "recall", c.recall());
    }

    private static void ratio(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) {
            o.put(key, v);
        } else {
            o.putNull(key);
        }
    }

    /** Reads back what {@link #predictor} wrote. */
    public static PredictorConfusion predictor(JsonNode o) {
        return new PredictorConfusion(o.path("true_positives").asLong(), o.path("false_positives").asLong(),
                o.path("false_negatives").asLong(), o.path("true_negatives").asLong());
    }

    public void step(StepMetrics m, double elapsedSeconds) {
        append(record(m, elapsedSeconds));
    }

    public void evaluation(long step, double validLoss) {
        append(Json.mapper().createObjectNode().put("type", "eval").put("step", step).put("val_loss", validLoss));
    }

    private void append(ObjectNode record) {
        try {
            Files.writeString(file, Json.compact(record) + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot write metrics (" + e.getMessage() + ")");
        }
    }

    /** Keeps only the records of steps up to {@code step} (a resumed run continues from there). */
    public void truncateAfter(long step) {
        if (!Files.isRegularFile(file)) {
            return;
        }
        var kept = new ArrayList<String>();
        for (String line : lines()) {
            JsonNode n = Json.parse(line, file.toString());
            if (n.path("step").asLong() <= step) {
                kept.add(line);
            }
        }
        AtomicFiles.writeString(file, kept.isEmpty() ? "" : String.join("\n", kept) + "\n");
    }

    /** The file's lines (empty when there is none yet). */
    public List<String> lines() {
        try {
            return Files.isRegularFile(file) ? Files.readAllLines(file, StandardCharsets.UTF_8).stream()
                    .filter(l -> !l.isBlank()).toList() : List.of();
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read metrics (" + e.getMessage() + ")");
        }
    }
}
