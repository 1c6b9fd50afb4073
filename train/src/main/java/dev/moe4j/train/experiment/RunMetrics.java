package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.moe.stats.PredictorConfusion;
import dev.moe4j.train.MetricsLog;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A run's {@code metrics.jsonl} read back: its steps (losses, time, tokens, each MoE layer's load per expert,
 * dropped share, CV, max violation and expert-choice predictor counts) and its evaluations, with the summaries the experiments report.
 */
public record RunMetrics(List<Step> steps, List<Eval> evals) {
    /** One optimiser step; {@code layers} in MoE-layer order. */
    public record Step(long step, double loss, double crossEntropy, long tokens, double elapsed, List<Layer> layers) {
    }

    /** One MoE layer in one step; {@code predictor} null unless an expert-choice predictor trained. */
    public record Layer(int layer, int[] load, double cv, double dropped, double maxViolation,
                        PredictorConfusion predictor) {
    }

    /** One evaluation on the validation batches. */
    public record Eval(long step, double validLoss) {
    }

    public RunMetrics {
        steps = List.copyOf(steps);
        evals = List.copyOf(evals);
    }

    public static RunMetrics read(Path metricsFile) {
        var steps = new ArrayList<Step>();
        var evals = new ArrayList<Eval>();
        for (String line : new MetricsLog(metricsFile).lines()) {
            JsonNode n = Json.parse(line, metricsFile.toString());
            if (n.path("type").asText().equals("eval")) {
                evals.add(new Eval(n.path("step").asLong(), n.path("val_loss").asDouble(Double.NaN)));
                continue;
            }
            var layers = new ArrayList<Layer>();
            for (JsonNode l : n.path("routing")) {
                JsonNode t = l.path("tokens_per_expert");
                int[] load = new int[t.size()];
                for (int i = 0; i < load.length; i++) {
                    load[i] = t.get(i).asInt();
                }
                layers.add(new Layer(l.path("layer").asInt(), load, l.path("load_cv").asDouble(),
                        l.path("dropped").asDouble(), l.path("max_violation").asDouble(),
                        l.has("predictor") ? MetricsLog.predictor(l.path("predictor")) : null));
            }
            steps.add(new Step(n.path("step").asLong(), n.path("loss").asDouble(Double.NaN),
                    n.path("ce").asDouble(Double.NaN), n.path("tokens").asLong(), n.path("elapsed_s").asDouble(),
                    layers));
        }
        return new RunMetrics(steps, evals);
    }

    /** The last {@code fraction} of the steps (at least one): the window the routing summaries are taken over. */
    public List<Step> tail(double fraction) {
        int n = Math.max(1, (int) Math.round(steps.size() * fraction));
        return steps.subList(Math.max(0, steps.size() - n), steps.size());
    }

    /** Tokens trained on up to and including {@code step}. */
    public long tokensAt(long step) {
        long sum = 0;
        for (Step s : steps) {
            if (s.step() > step) {
                break;
            }
            sum += s.tokens();
        }
        return sum;
    }

    /** Seconds of training up to and including {@code step}. */
    public double elapsedAt(long step) {
        double t = 0;
        for (Step s : steps) {
            if (s.step() > step) {
                break;
            }
            t = s.elapsed();
        }
        return t;
    }

    public int moeLayers() {
        return steps.isEmpty() ? 0 : steps.getFirst().layers().size();
    }

    /**
     * Per MoE layer, the experts whose share of the assignments over {@code window} is below {@code threshold}
     * times the mean share: experts the router has (nearly) stopped using.
     */
    public int[] deadExperts(List<Step> window, double threshold) {
        int layers = moeLayers();
        int[] dead = new int[layers];
        for (int l = 0; l < layers; l++) {
            long[] load = windowLoad(window, l);
            double mean = 0;
            for (long v : load) {
                mean += v;
            }
            mean /= load.length;
            for (long v : load) {
                if (v < threshold * mean) {
                    dead[l]++;
                }
            }
        }
        return dead;
    }

    /** Assignments per expert of MoE layer {@code layer}, summed over {@code window}. */
    public static long[] windowLoad(List<Step> window, int layer) {
        long[] load = new long[window.getFirst().layers().get(layer).load().length];
        for (Step s : window) {
            int[] l = s.layers().get(layer).load();
            for (int i = 0; i < load.length; i++) {
                load[i] += l[i];
            }
        }
        return load;
    }
}
