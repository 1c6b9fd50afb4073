package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Run records from metrics written by hand: what counts as dead, dropped, a spike, a divergence. */
class RunRecordTest {
    @TempDir
    Path dir;

    private static String step(int step, double loss, int[] load, double dropped) {
        ObjectNode o = Json.mapper().createObjectNode().put("type", "step").put("step", step).put("loss", loss)
                .put("ce", loss).put("tokens", 100).put("elapsed_s", step * 0.5);
        var layer = o.putArray("routing").addObject().put("layer", 1).put("load_cv", 0.5).put("dropped", dropped)
                .put("max_violation", 1.0);
        var t = layer.putArray("tokens_per_expert");
        for (int l : load) {
            t.add(l);
        }
        return Json.compact(o);
    }

    private RunMetrics metrics(String... lines) throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        Files.writeString(file, String.join("\n", lines) + "\n");
        return RunMetrics.read(file);
    }

    private static final Variant V = new Variant("v", "v", Map.of(), "");

    @Test
    void anExpertWithUnderOnePercentOfTheMeanLoadAtTheEndIsDead() throws Exception {
        var lines = new String[10];
        for (int i = 0; i < 10; i++) {
            // experts 2 and 3 are busy early on, then starve: only the last 20 % of steps count; expert 2 keeps
            // 2 % of the mean load (alive), expert 3 none (dead)
            lines[i] = step(i + 1, 5 - 0.1 * i, i < 8 ? new int[] {50, 50, 50, 50} : new int[] {100, 99, 1, 0},
                    i < 8 ? 0 : 0.25);
        }
        ObjectNode r = RunRecord.of("x", V, 1, Map.of("warmup", "2"), metrics(lines), -1, new double[] {1, 1});
        assertEquals(1, r.path("routing").path("dead_experts").asInt(), r.toPrettyString());
        assertEquals(25.0, r.path("routing").path("dropped_pct").asDouble(), 1e-9);
        assertEquals(5.0, r.path("routing").path("dropped_pct_all_steps").asDouble(), 1e-9);
        assertEquals(0, r.path("loss_spikes").asInt());
        assertEquals(4.8, r.path("max_train_loss_after_warmup").asDouble(), 1e-9, "the loss of step 3, the first after warmup");
        assertEquals(2, r.path("routing").path("window_steps").asInt());
    }

    @Test
    void aLossFarAboveTheBestSoFarIsASpikeAndANanEndsTheRunAsDiverged() throws Exception {
        ObjectNode r = RunRecord.of("x", V, 1, Map.of("warmup", "1"), metrics(
                step(1, 7, new int[] {1, 1}, 0), step(2, 5, new int[] {1, 1}, 0), step(3, 6.5, new int[] {1, 1}, 0),
                step(4, 5.5, new int[] {1, 1}, 0), step(5, Double.NaN, new int[] {1, 1}, 0)), 5, new double[] {1, 1});
        assertEquals("diverged", r.path("status").asText());
        assertEquals(5, r.path("diverged_at").asInt());
        assertEquals(2, r.path("loss_spikes").asInt(), "step 3 (1.5 above 5) and the NaN at step 5");
        assertTrue(r.path("final_val_loss").isNull());
        assertTrue(r.path("max_train_loss_after_warmup").isNull(), "not finite");
    }
}
