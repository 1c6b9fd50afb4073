package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.train.config.TrainConfig;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * results.json of an experiment: per variant its options, compute per token, the summary of every measurement
 * over the seeds (mean, sample standard deviation, the value of each seed), the mean validation curve, and every
 * run's record; plus what the experiment asks of them together (for moe-vs-dense, the steps the MoE needs to reach
 * each dense model's final loss).
 */
public final class ExperimentResults {
    private ExperimentResults() {
    }

    /** A measurement summarised over seeds: its key in results.json and where a run record holds it. */
    private record Measure(String key, ToDoubleFunction<JsonNode> of) {
    }

    private static final List<Measure> MEASURES = List.of(
            new Measure("final_val_loss", r -> JsonNumbers.get(r, "final_val_loss")),
            new Measure("final_train_loss", r -> JsonNumbers.get(r, "final_train_loss")),
            new Measure("causal_val_loss", r -> JsonNumbers.get(r.path("analysis").path("causal"), "causal_loss")),
            new Measure("batch_val_loss_same_tokens",
                    r -> JsonNumbers.get(r.path("analysis").path("causal"), "batch_loss")),
            new Measure("causal_gap", r -> JsonNumbers.get(r.path("analysis").path("causal"), "causal_loss")
                    - JsonNumbers.get(r.path("analysis").path("causal"), "batch_loss")),
            new Measure("threshold_causal_val_loss",
                    r -> JsonNumbers.get(r.path("analysis").path("causal"), "threshold_causal_loss")),
            new Measure("predictor_top_k_causal_val_loss",
                    r -> JsonNumbers.get(r.path("analysis").path("causal"), "predictor_top_k_causal_loss")),
            new Measure("predictor_accuracy", r -> JsonNumbers.get(r.path("routing"), "predictor_accuracy")),
            new Measure("predictor_precision", r -> JsonNumbers.get(r.path("routing"), "predictor_precision")),
            new Measure("predictor_recall", r -> JsonNumbers.get(r.path("routing"), "predictor_recall")),
            new Measure("load_cv", r -> JsonNumbers.get(r.path("routing"), "load_cv")),
            new Measure("max_violation", r -> JsonNumbers.get(r.path("routing"), "max_violation")),
            new Measure("dead_experts", r -> JsonNumbers.get(r.path("routing"), "dead_experts")),
            new Measure("dropped_pct", r -> JsonNumbers.get(r.path("routing"), "dropped_pct")),
            new Measure("router_z", r -> meanOf(r.path("analysis").path("router_z"))),
            new Measure("max_abs_logit", r -> meanOf(r.path("analysis").path("max_abs_logit"))),
            new Measure("max_train_loss_after_warmup", r -> JsonNumbers.get(r, "max_train_loss_after_warmup")),
            new Measure("loss_spikes", r -> JsonNumbers.get(r, "loss_spikes")),
            new Measure("tokens_per_s", r -> JsonNumbers.get(r, "tokens_per_s")),
            new Measure("wall_s", r -> JsonNumbers.get(r, "wall_s")));

    static ObjectNode aggregate(Experiment e, List<Variant> variants, ExperimentRunner.Options o,
                                Map<String, JsonNode> records, double[] loadAverage) {
        ObjectNode out = Json.mapper().createObjectNode();
        out.put("experiment", e.name());
        out.put("title", e.title());
        out.put("claim", e.claim());
        out.put("quick", o.quick());
        out.put("seeds", o.seeds());
        out.put("created", Instant.now().toString());
        var machine = out.putObject("machine");
        machine.put("processors", Runtime.getRuntime().availableProcessors());
        JsonNumbers.put(machine, "load_average_start", loadAverage[0]);
        JsonNumbers.put(machine, "load_average_end", loadAverage[1]);
        machine.put("java", Runtime.version().toString());
        machine.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        var base = out.putObject("base");
        e.base().forEach(base::put);
        if (o.quick()) {
            e.quick().forEach(base::put);
        }
        out.put("window", "routing measures are means over the last " + Math.round(RunRecord.WINDOW * 100)
                + " % of the steps; an expert is dead with less than " + Math.round(RunRecord.DEAD * 100)
                + " % of the mean load there");
        var list = out.putArray("variants");
        for (Variant v : variants) {
            ObjectNode node = list.addObject();
            node.put("name", v.name());
            node.put("label", v.label());
            node.put("note", v.note());
            var settings = node.putObject("settings");
            v.settings().forEach(settings::put);
            List<JsonNode> runs = new ArrayList<>();
            for (int seed = 1; seed <= o.seeds(); seed++) {
                JsonNode r = records.get(v.name() + "-s" + seed);
                if (r != null) {
                    runs.add(r);
                }
            }
            compute(node.putObject("compute"), ExperimentRunner.definition(e, v, 1, o.quick()));
            summary(node.putObject("summary"), runs);
            meanCurve(node.putArray("mean_eval_curve"), runs);
            var array = node.putArray("runs");
            runs.forEach(array::add);
        }
        if (e == Experiments.MOE_VS_DENSE) {
            stepsToReach(out.putObject("findings"), list);
        }
        return out;
    }

    private static void compute(ObjectNode c, Map<String, String> definition) {
        TrainConfig config = TrainConfig.parse(definition);
        ModelConfig model = config.model().orElseThrow();
        int tokens = config.optimiser().batch() * config.data().context();
        var count = ParameterCount.of(model);
        var budget = ComputeBudget.of(model, tokens, config.data().context());
        c.put("total_params", count.total());
        c.put("active_params", count.active());
        c.put("ffn_params", count.routedExperts() + count.sharedExperts() + count.denseMlps() + count.router());
        JsonNumbers.put(c, "expert_macs_per_token", budget.expertMacs());
        JsonNumbers.put(c, "ffn_macs_per_token", budget.ffnMacs());
        JsonNumbers.put(c, "macs_per_token", budget.totalMacs());
        c.put("vocab_assumed", model.vocabSize());
    }

    private static void summary(ObjectNode s, List<JsonNode> runs) {
        for (Measure m : MEASURES) {
            var values = new ArrayList<Double>();
            ArrayNode perSeed = Json.mapper().createArrayNode();
            for (JsonNode r : runs) {
                double v = m.of().applyAsDouble(r);
                JsonNumbers.add(perSeed, v);
                if (Double.isFinite(v)) {
                    values.add(v);
                }
            }
            double[] arr = values.stream().mapToDouble(Double::doubleValue).toArray();
            ObjectNode n = s.putObject(m.key());
            JsonNumbers.put(n, "mean", Statistics.mean(arr));
            JsonNumbers.put(n, "std", Statistics.std(arr));
            n.put("n", arr.length);
            n.set("values", perSeed);
        }
        int diverged = 0;
        var at = s.putArray("diverged_at");
        for (JsonNode r : runs) {
            if (r.path("status").asText().equals("diverged")) {
                diverged++;
                at.add(r.path("diverged_at").asLong());
            } else {
                at.addNull();
            }
        }
        s.put("diverged", diverged);
        s.put("runs", runs.size());
    }

    /** Validation loss at each evaluation, averaged over the runs that finished (they share evaluation steps). */
    private static void meanCurve(ArrayNode out, List<JsonNode> runs) {
        List<JsonNode> finished = runs.stream().filter(r -> r.path("status").asText().equals("finished")).toList();
        if (finished.isEmpty()) {
            return;
        }
        JsonNode first = finished.getFirst().path("curves").path("eval");
        for (int i = 0; i < first.size(); i++) {
            double[] losses = new double[finished.size()];
            double seconds = 0;
            boolean complete = true;
            for (int r = 0; r < finished.size(); r++) {
                JsonNode p = finished.get(r).path("curves").path("eval").path(i);
                if (p.isMissingNode() || p.get(0).asLong() != first.get(i).get(0).asLong()) {
                    complete = false;
                    break;
                }
                losses[r] = p.get(3).asDouble(Double.NaN);
                seconds += p.get(2).asDouble() / finished.size();
            }
            if (!complete) {
                break;
            }
            var point = out.addArray();
            point.add(first.get(i).get(0).asLong());
            point.add(first.get(i).get(1).asLong());
            JsonNumbers.add(point, seconds);
            JsonNumbers.add(point, Statistics.mean(losses));
            JsonNumbers.add(point, Statistics.std(losses));
        }
    }

    /**
     * For moe-vs-dense: the step (linearly interpolated between evaluations) at which the MoE's mean validation
     * curve first reaches each dense model's mean final loss, also per seed (seed s of the MoE against seed s of
     * the dense model), and the training seconds it took.
     */
    private static void stepsToReach(ObjectNode findings, ArrayNode variants) {
        JsonNode moe = byName(variants, "moe");
        var reach = findings.putArray("moe_steps_to_reach");
        for (String target : List.of("dense-active", "dense-total")) {
            JsonNode dense = byName(variants, target);
            if (moe == null || dense == null) {
                continue;
            }
            ObjectNode f = reach.addObject();
            f.put("target", target);
            double loss = JsonNumbers.get(dense.path("summary").path("final_val_loss"), "mean");
            JsonNumbers.put(f, "target_final_val_loss", loss);
            double[] at = crossing(moe.path("mean_eval_curve"), loss);
            JsonNumbers.put(f, "moe_steps", at[0]);
            JsonNumbers.put(f, "moe_seconds", at[1]);
            JsonNumbers.put(f, "target_seconds", JsonNumbers.get(dense.path("summary").path("wall_s"), "mean"));
            var perSeed = f.putArray("per_seed_moe_steps");
            JsonNode moeRuns = moe.path("runs"), denseRuns = dense.path("runs");
            for (int i = 0; i < Math.min(moeRuns.size(), denseRuns.size()); i++) {
                double seedLoss = JsonNumbers.get(denseRuns.get(i), "final_val_loss");
                JsonNumbers.add(perSeed, crossing(moeRuns.get(i).path("curves").path("eval"), seedLoss)[0]);
            }
            JsonNumbers.put(f, "total_steps", moe.path("runs").path(0).path("steps").asDouble(Double.NaN));
        }
    }

    /** [step, seconds] where a curve of [step, tokens, seconds, loss, ...] first falls to {@code loss}; NaN if never. */
    static double[] crossing(JsonNode curve, double loss) {
        if (!Double.isFinite(loss)) {
            return new double[] {Double.NaN, Double.NaN};
        }
        double prevStep = 0, prevLoss = Double.NaN, prevSeconds = 0;
        for (JsonNode p : curve) {
            double step = p.get(0).asDouble(), seconds = p.get(2).asDouble(), l = p.get(3).asDouble(Double.NaN);
            if (l <= loss) {
                if (Double.isNaN(prevLoss)) {
                    return new double[] {step, seconds};
                }
                double f = (prevLoss - loss) / (prevLoss - l);
                return new double[] {prevStep + f * (step - prevStep), prevSeconds + f * (seconds - prevSeconds)};
            }
            prevStep = step;
            prevLoss = l;
            prevSeconds = seconds;
        }
        return new double[] {Double.NaN, Double.NaN};
    }

    private static JsonNode byName(ArrayNode variants, String name) {
        for (JsonNode v : variants) {
            if (v.path("name").asText().equals(name)) {
                return v;
            }
        }
        return null;
    }

    private static double meanOf(JsonNode array) {
        double sum = 0;
        int n = 0;
        for (JsonNode v : array) {
            if (v.isNumber()) {
                sum += v.asDouble();
                n++;
            }
        }
        return n == 0 ? Double.NaN : sum / n;
    }
}
