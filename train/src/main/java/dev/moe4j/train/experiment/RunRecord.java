package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.moe.stats.PredictorConfusion;

import java.util.List;
import java.util.Map;

/**
 * What one run of an experiment measured, as the JSON object saved beside it ({@code run.json}) and gathered into
 * results.json: outcome, losses, speed, the routing summaries over the last fifth of training, curves, and the
 * load of every expert over training (for the report's heatmaps).
 */
final class RunRecord {
    /**
     * The share of training, at its end, over which load CV, violation, dead experts, drops and an expert-choice
     * predictor's accuracy, precision and recall (on the training batches, before each step's update) are measured.
     */
    static final double WINDOW = 0.2;
    /** An expert with less than this share of the mean load over the window counts as dead. */
    static final double DEAD = 0.01;
    /** A step whose loss is this many nats above the lowest so far is a loss spike. */
    static final double SPIKE = 1.0;
    private static final int CURVE_POINTS = 100;
    private static final int HEATMAP_BINS = 40;

    private RunRecord() {
    }

    /**
     * @param definition   the run's options as the experiment defines them (what a re-run compares)
     * @param divergedStep the step whose loss was not finite, or −1
     * @param loadAverage  the system load average when the run started and ended (the machine is shared)
     */
    static ObjectNode of(String experiment, Variant variant, long seed, Map<String, String> definition,
                         RunMetrics m, long divergedStep, double[] loadAverage) {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("experiment", experiment);
        o.put("variant", variant.name());
        o.put("seed", seed);
        o.put("status", divergedStep >= 0 ? "diverged" : "finished");
        if (divergedStep >= 0) {
            o.put("diverged_at", divergedStep);
        }
        var settings = o.putObject("settings");
        definition.forEach(settings::put);
        long steps = m.steps().isEmpty() ? 0 : m.steps().getLast().step();
        long tokens = m.tokensAt(Long.MAX_VALUE);
        double wall = m.steps().isEmpty() ? 0 : m.steps().getLast().elapsed();
        o.put("steps", steps);
        o.put("tokens", tokens);
        JsonNumbers.put(o, "wall_s", wall);
        JsonNumbers.put(o, "tokens_per_s", wall > 0 ? tokens / wall : Double.NaN);
        var load = o.putArray("load_average");
        for (double v : loadAverage) {
            JsonNumbers.add(load, v);
        }
        List<RunMetrics.Step> last = m.steps().isEmpty() ? List.of() : m.steps().subList(
                Math.max(0, m.steps().size() - 10), m.steps().size());
        JsonNumbers.put(o, "final_train_loss", divergedStep >= 0 ? Double.NaN
                : last.stream().mapToDouble(RunMetrics.Step::crossEntropy).average().orElse(Double.NaN));
        stability(o, m, Integer.parseInt(definition.getOrDefault("warmup", "0")));
        double finalValid = m.evals().isEmpty() || divergedStep >= 0 ? Double.NaN : m.evals().getLast().validLoss();
        JsonNumbers.put(o, "final_val_loss", finalValid);
        if (!m.steps().isEmpty()) {
            routing(o.putObject("routing"), m);
        }
        curves(o.putObject("curves"), m);
        if (m.moeLayers() > 0 && !m.steps().isEmpty()) {
            heatmap(o.putObject("load_over_training"), m);
        }
        return o;
    }

    private static void routing(ObjectNode r, RunMetrics m) {
        int layers = m.moeLayers();
        var window = m.tail(WINDOW);
        r.put("window_steps", window.size());
        if (layers == 0) {
            return;
        }
        int[] dead = m.deadExperts(window, DEAD);
        double cv = 0, violation = 0, dropped = 0, droppedAll = 0, accuracy = 0, precision = 0, recall = 0;
        boolean predicting = false;
        var perLayer = r.putArray("layers");
        for (int l = 0; l < layers; l++) {
            double lcv = 0, lv = 0, ld = 0;
            for (RunMetrics.Step s : window) {
                lcv += s.layers().get(l).cv();
                lv += s.layers().get(l).maxViolation();
                ld += s.layers().get(l).dropped();
            }
            lcv /= window.size();
            lv /= window.size();
            ld /= window.size();
            double all = 0;
            for (RunMetrics.Step s : m.steps()) {
                all += s.layers().get(l).dropped();
            }
            all /= m.steps().size();
            cv += lcv / layers;
            violation += lv / layers;
            dropped += ld / layers;
            droppedAll += all / layers;
            ObjectNode n = perLayer.addObject();
            n.put("layer", window.getFirst().layers().get(l).layer());
            JsonNumbers.put(n, "load_cv", lcv);
            JsonNumbers.put(n, "max_violation", lv);
            JsonNumbers.put(n, "dropped_pct", 100 * ld);
            n.put("dead_experts", dead[l]);
            PredictorConfusion predicted = predictor(window, l);
            if (predicted != null) {
                JsonNumbers.put(n, "predictor_accuracy", predicted.accuracy());
                JsonNumbers.put(n, "predictor_precision", predicted.precision());
                JsonNumbers.put(n, "predictor_recall", predicted.recall());
                accuracy += predicted.accuracy() / layers;
                precision += predicted.precision() / layers;
                recall += predicted.recall() / layers;
                predicting = true;
            }
            var share = n.putArray("load_share");
            for (double v : Statistics.normalised(toDouble(RunMetrics.windowLoad(window, l)))) {
                JsonNumbers.add(share, v);
            }
        }
        JsonNumbers.put(r, "load_cv", cv);
        JsonNumbers.put(r, "max_violation", violation);
        JsonNumbers.put(r, "dropped_pct", 100 * dropped);
        JsonNumbers.put(r, "dropped_pct_all_steps", 100 * droppedAll);
        int deadTotal = 0;
        for (int d : dead) {
            deadTotal += d;
        }
        r.put("dead_experts", deadTotal);
        if (predicting) {
            JsonNumbers.put(r, "predictor_accuracy", accuracy);
            JsonNumbers.put(r, "predictor_precision", precision);
            JsonNumbers.put(r, "predictor_recall", recall);
        }
    }

    /** An expert-choice predictor's counts in MoE layer {@code layer} summed over the window, or null without one. */
    private static PredictorConfusion predictor(List<RunMetrics.Step> window, int layer) {
        PredictorConfusion sum = null;
        for (RunMetrics.Step s : window) {
            PredictorConfusion c = s.layers().get(layer).predictor();
            if (c != null) {
                sum = sum == null ? c : sum.plus(c);
            }
        }
        return sum;
    }

    /**
     * How rough training was after warmup: the largest training loss, and the loss spikes (steps whose loss exceeds
     * the lowest loss seen so far by more than {@link #SPIKE} nats).
     */
    private static void stability(ObjectNode o, RunMetrics m, int warmup) {
        double max = Double.NEGATIVE_INFINITY, min = Double.POSITIVE_INFINITY;
        int spikes = 0;
        for (RunMetrics.Step s : m.steps()) {
            double l = s.crossEntropy();
            if (s.step() > warmup) {
                max = Math.max(max, Double.isFinite(l) ? l : Double.POSITIVE_INFINITY);
                if (!Double.isFinite(l) || l > min + SPIKE) {
                    spikes++;
                }
            }
            if (Double.isFinite(l)) {
                min = Math.min(min, l);
            }
        }
        JsonNumbers.put(o, "max_train_loss_after_warmup", max);
        o.put("loss_spikes", spikes);
    }

    /** Evaluations as [step, tokens, seconds, loss]; training loss averaged into at most 100 such points. */
    private static void curves(ObjectNode c, RunMetrics m) {
        var eval = c.putArray("eval");
        for (RunMetrics.Eval e : m.evals()) {
            point(eval.addArray(), e.step(), m.tokensAt(e.step()), m.elapsedAt(e.step()), e.validLoss());
        }
        var train = c.putArray("train");
        int n = m.steps().size();
        int bins = Math.min(CURVE_POINTS, n);
        for (int b = 0; b < bins; b++) {
            int from = b * n / bins, to = (b + 1) * n / bins;
            double sum = 0;
            for (int i = from; i < to; i++) {
                sum += m.steps().get(i).crossEntropy();
            }
            RunMetrics.Step end = m.steps().get(to - 1);
            point(train.addArray(), end.step(), m.tokensAt(end.step()), end.elapsed(), sum / (to - from));
        }
    }

    private static void point(ArrayNode a, long step, long tokens, double seconds, double loss) {
        a.add(step);
        a.add(tokens);
        JsonNumbers.add(a, seconds);
        JsonNumbers.add(a, loss);
    }

    /** Each MoE layer's share of assignments per expert in consecutive bins of steps. */
    private static void heatmap(ObjectNode h, RunMetrics m) {
        int n = m.steps().size(), bins = Math.min(HEATMAP_BINS, n), layers = m.moeLayers();
        var ends = h.putArray("bin_end_steps");
        for (int b = 0; b < bins; b++) {
            ends.add(m.steps().get((b + 1) * n / bins - 1).step());
        }
        var share = h.putArray("share");
        for (int l = 0; l < layers; l++) {
            var layer = share.addArray();
            for (int b = 0; b < bins; b++) {
                var window = m.steps().subList(b * n / bins, (b + 1) * n / bins);
                var row = layer.addArray();
                for (double v : Statistics.normalised(toDouble(RunMetrics.windowLoad(window, l)))) {
                    row.add(Math.round(v * 1e4) / 1e4);
                }
            }
        }
    }

    private static double[] toDouble(long[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i];
        }
        return out;
    }
}
