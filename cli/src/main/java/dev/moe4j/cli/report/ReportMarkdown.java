package dev.moe4j.cli.report;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * An experiment's results as Markdown, for docs/RESULTS.md: one table row per variant with each measurement's mean
 * ± sample standard deviation and the per-seed values, leaving out columns no variant has.
 */
public final class ReportMarkdown {
    private ReportMarkdown() {
    }

    private record Column(String key, String title, int digits) {
    }

    private static final List<Column> COLUMNS = List.of(
            new Column("final_val_loss", "val loss", 3), new Column("causal_val_loss", "causal val loss", 3),
            new Column("batch_val_loss_same_tokens", "same windows, routed as in training", 3),
            new Column("causal_gap", "causal − batch", 4),
            new Column("threshold_causal_val_loss", "causal, threshold decoding", 3),
            new Column("predictor_top_k_causal_val_loss", "causal, predictor's top-k", 3),
            new Column("predictor_accuracy", "predictor accuracy", 3),
            new Column("predictor_precision", "predictor precision", 3),
            new Column("predictor_recall", "predictor recall", 3),
            new Column("load_cv", "load CV", 2), new Column("max_violation", "max violation", 2),
            new Column("dead_experts", "dead experts", 1), new Column("dropped_pct", "dropped %", 1),
            new Column("loss_spikes", "loss spikes", 1), new Column("router_z", "router z", 1),
            new Column("tokens_per_s", "tokens/s", 0), new Column("wall_s", "wall s", 0));

    public static String of(JsonNode results) {
        if (results.path("experiment").asText().equals("vmoe")) {
            return vmoe(results);
        }
        var columns = new ArrayList<Column>();
        for (Column c : COLUMNS) {
            for (JsonNode v : results.path("variants")) {
                if (v.path("summary").path(c.key()).path("n").asInt() > 0) {
                    columns.add(c);
                    break;
                }
            }
        }
        var out = new StringBuilder();
        out.append("| variant | FFN MACs/token | active / total params |");
        columns.forEach(c -> out.append(' ').append(c.title()).append(" |"));
        out.append(" diverged |\n|---|---|---|");
        columns.forEach(c -> out.append("---|"));
        out.append("---|\n");
        for (JsonNode v : results.path("variants")) {
            JsonNode compute = v.path("compute");
            out.append("| ").append(v.path("label").asText()).append(" | ")
                    .append(thousands(compute.path("ffn_macs_per_token").asDouble())).append(" | ")
                    .append(thousands(compute.path("active_params").asDouble())).append(" / ")
                    .append(thousands(compute.path("total_params").asDouble())).append(" |");
            for (Column c : columns) {
                out.append(' ').append(cell(v.path("summary").path(c.key()), c.digits())).append(" |");
            }
            out.append(' ').append(v.path("summary").path("diverged").asInt()).append(" of ")
                    .append(v.path("summary").path("runs").asInt()).append(" |\n");
        }
        JsonNode reach = results.path("findings").path("moe_steps_to_reach");
        if (reach.isArray() && !reach.isEmpty()) {
            out.append("\n| MoE reaching | its final val loss | MoE steps (mean curve) | per seed | of total |\n")
                    .append("|---|---|---|---|---|\n");
            for (JsonNode f : reach) {
                double steps = f.path("moe_steps").asDouble(Double.NaN);
                var seeds = new ArrayList<String>();
                f.path("per_seed_moe_steps").forEach(s -> seeds.add(s.isNumber() ? number(s.asDouble(), 0) : "never"));
                out.append("| ").append(f.path("target").asText()).append(" | ")
                        .append(number(f.path("target_final_val_loss").asDouble(Double.NaN), 3)).append(" | ")
                        .append(f.path("moe_steps").isNumber() ? number(steps, 0) : "not reached").append(" | ")
                        .append(String.join(", ", seeds)).append(" | ")
                        .append(f.path("moe_steps").isNumber()
                                ? Math.round(100 * steps / f.path("total_steps").asDouble()) + " %" : "–")
                        .append(" |\n");
            }
        }
        specialisation(results, out);
        causalChoices(results, out);
        return out.toString();
    }

    private record Measure(String key, String title) {
    }

    private static final List<Measure> SPECIALISATION = List.of(
            new Measure("mi_domain_bits", "I(domain; expert)"), new Measure("mi_type_bits", "I(type; expert)"),
            new Measure("mi_domain_given_type_bits", "I(domain; expert given type)"),
            new Measure("mi_type_given_domain_bits", "I(type; expert given domain)"),
            new Measure("same_expert_next_token", "next token, same expert"),
            new Measure("same_expert_chance", "same expert by chance"));

    /**
     * Per MoE layer, how much the first-choice expert tells about a token's domain and its type (bits, mean over
     * seeds with each seed's value): printed for variants trained on several domains.
     */
    private static void specialisation(JsonNode results, StringBuilder out) {
        for (JsonNode v : results.path("variants")) {
            JsonNode runs = v.path("runs");
            if (runs.isEmpty() || runs.get(0).path("analysis").path("domains").path("names").size() < 2) {
                continue;
            }
            out.append("\n").append(v.path("label").asText())
                    .append(": first-choice expert against domain and token type (bits; mean and each seed)\n\n| layer |");
            SPECIALISATION.forEach(m -> out.append(' ').append(m.title()).append(" |"));
            out.append("\n|---|");
            SPECIALISATION.forEach(m -> out.append("---|"));
            out.append('\n');
            int layers = runs.get(0).path("analysis").path("specialisation").size();
            for (int layer = 0; layer < layers; layer++) {
                out.append("| ").append(runs.get(0).path("analysis").path("specialisation").get(layer).path("layer").asInt())
                        .append(" |");
                for (Measure m : SPECIALISATION) {
                    var values = new ArrayList<String>();
                    double sum = 0;
                    for (JsonNode run : runs) {
                        double x = run.path("analysis").path("specialisation").get(layer).path(m.key()).asDouble();
                        sum += x;
                        values.add(number(x, 3));
                    }
                    out.append(' ').append(number(sum / runs.size(), 3)).append(" (").append(String.join(", ", values))
                            .append(") |");
                }
                out.append('\n');
            }
        }
    }

    private static final List<Measure> CHOICES = List.of(new Measure("accuracy", "accuracy"),
            new Measure("precision", "precision"), new Measure("recall", "recall"));

    /**
     * For expert choice, per MoE layer and causal decoding (the variant's own, and thresholds for a model that also
     * has a predictor), how its (token, expert) choices matched the experts' top-C selections: on the training batches
     * over the last steps (the predictor's, as trained) and on the validation windows of the causal evaluation (mean
     * over seeds with each seed's value).
     */
    private static void causalChoices(JsonNode results, StringBuilder out) {
        for (JsonNode v : results.path("variants")) {
            JsonNode runs = v.path("runs");
            if (runs.isEmpty() || !runs.get(0).path("analysis").path("causal").has("agreement")) {
                continue;
            }
            out.append("\n").append(v.path("label").asText()).append(": causal (token, expert) choices against the "
                    + "experts' top-C selections (mean and each seed)\n\n| layer | decoding |");
            CHOICES.forEach(m -> out.append(" training batches, ").append(m.title()).append(" |"));
            CHOICES.forEach(m -> out.append(" validation windows, ").append(m.title()).append(" |"));
            out.append("\n|---|---|");
            CHOICES.forEach(m -> out.append("---|---|"));
            out.append('\n');
            String own = runs.get(0).path("analysis").path("causal").path("expert_choice_decode").asText();
            int layers = runs.get(0).path("analysis").path("causal").path("agreement").size();
            for (int l = 0; l < layers; l++) {
                int layer = l;
                for (String decoding : own.equals("threshold") ? List.of(own)
                        : List.of(own, "threshold", "predictor_top_k")) {
                    String key = decoding.equals(own) ? "agreement" : decoding + "_agreement";
                    if (!runs.get(0).path("analysis").path("causal").has(key)) {
                        continue;
                    }
                    JsonNode causal = runs.get(0).path("analysis").path("causal");
                    out.append("| ").append(causal.path(key).get(layer).path("layer").asInt()).append(" | ")
                            .append(decoding.equals("predictor_top_k")
                                    ? "predictor, top-" + causal.path("predictor_top_k").asInt() : decoding)
                            .append(" |");
                    for (Measure m : CHOICES) {
                        out.append(' ').append(decoding.equals("predictor") ? seeds(runs, r -> r.path("routing")
                                .path("layers").get(layer).path("predictor_" + m.key())) : "–").append(" |");
                    }
                    for (Measure m : CHOICES) {
                        out.append(' ').append(seeds(runs, r -> r.path("analysis").path("causal").path(key).get(layer)
                                .path(m.key()))).append(" |");
                    }
                    out.append('\n');
                }
            }
        }
    }

    /** The mean over runs of one value, with each run's value. */
    private static String seeds(JsonNode runs, java.util.function.Function<JsonNode, JsonNode> value) {
        var values = new ArrayList<String>();
        double sum = 0;
        for (JsonNode run : runs) {
            double x = value.apply(run).asDouble(Double.NaN);
            sum += x;
            values.add(number(x, 3));
        }
        return number(sum / runs.size(), 3) + " (" + String.join(", ", values) + ")";
    }

    private static String cell(JsonNode s, int digits) {
        if (s.path("n").asInt() == 0) {
            return "–";
        }
        var seeds = new ArrayList<String>();
        s.path("values").forEach(v -> seeds.add(v.isNumber() ? number(v.asDouble(), digits) : "–"));
        String spread = s.path("n").asInt() > 1 ? " ± " + number(s.path("std").asDouble(), digits) : "";
        return number(s.path("mean").asDouble(), digits) + spread + " (" + String.join(", ", seeds) + ")";
    }

    private static String number(double v, int digits) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%." + digits + "f", v) : "–";
    }

    private static String thousands(double v) {
        return v >= 1e6 ? String.format(Locale.ROOT, "%.2fM", v / 1e6) : String.format(Locale.ROOT, "%.0fk", v / 1e3);
    }

    /** The vision experiment's two tables: the variants at equal compute, and accuracy against capacity. */
    static String vmoe(JsonNode r) {
        var out = new StringBuilder();
        double peak = r.path("machine").path("peak_gflops").asDouble(Double.NaN);
        out.append("| variant | multiply-adds / image | test accuracy % | per seed | training images/s | of FMA peak |\n")
                .append("|---|---|---|---|---|---|\n");
        for (JsonNode v : r.path("variants")) {
            double rate = 0;
            var seeds = new ArrayList<String>();
            for (JsonNode run : v.path("runs")) {
                rate += run.path("train_images_per_s").asDouble() / v.path("runs").size();
                seeds.add(String.format(Locale.ROOT, "%.2f", 100 * run.path("accuracy").asDouble()));
            }
            double macs = v.path("macs_per_image").asDouble();
            out.append(String.format(Locale.ROOT, "| %s | %.2f M | %.2f ± %.2f | %s | %.0f | %.1f %% |%n",
                    v.path("description").asText(), macs / 1e6, 100 * v.path("mean_accuracy").asDouble(),
                    100 * v.path("std_accuracy").asDouble(), String.join(", ", seeds), rate,
                    100 * rate * 6 * macs / 1e9 / peak));
        }
        out.append("\n| capacity factor | order | test accuracy % | per seed | patches processed % | choices served % |\n")
                .append("|---|---|---|---|---|---|\n");
        for (JsonNode c : r.path("capacity")) {
            var seeds = new ArrayList<String>();
            double served = 0;
            for (JsonNode run : c.path("runs")) {
                seeds.add(String.format(Locale.ROOT, "%.2f", 100 * run.path("accuracy").asDouble()));
                served += run.path("served_share").asDouble() / c.path("runs").size();
            }
            out.append(String.format(Locale.ROOT, "| %s | %s | %.2f ± %.2f | %s | %.1f | %.1f |%n",
                    c.path("factor").asText(), c.path("priority").asText(), 100 * c.path("mean_accuracy").asDouble(),
                    100 * c.path("std_accuracy").asDouble(), String.join(", ", seeds),
                    100 * c.path("mean_processed_share").asDouble(), 100 * served));
        }
        return out.toString();
    }
}
