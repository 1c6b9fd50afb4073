package dev.moe4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;

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
        }
        return o;
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
