package dev.moe4j.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.cli.report.ReportPage;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.perf.Environment;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.route.RouteEvaluation;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.RoutingPolicy;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code moe4j route-eval}: what each routing policy costs a trained model, measured on held-out text in one run
 * (the moe4j model module's {@link RouteEvaluation}): a table, JSON, and an HTML page with ECharts.
 */
@Command(name = "route-eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measure routing policies on a trained MoE with held-out text: for each policy the perplexity,"
                + " the mean KL divergence of its next-token distributions from the trained routing's, the experts"
                + " and parameters a token uses, the bytes of weights a decoded token reads, and decode tokens/s"
                + " (greedy, timed in this run: every policy in turn, one untimed round first; median, min and max)."
                + " Beside it, per MoE layer: the load per expert, the router's entropy and the share of tokens"
                + " whose experts the policy changed from the trained top k.",
                "A policy is written as space-separated key=value items: k (experts per token), top-p, min, max,"
                        + " floor, mask, force, capacity, overflow, priority; 'trained' is the trained routing, always"
                        + " the first row. Example: --policy k=1 --policy 'top-p=0.7 max=4' --policy 'mask=*:3'.",
                "Without --policy: k=1, k-1, k+1 and 2k of the trained k (where they fit), top-p 0.5, 0.7 and 0.9,"
                        + " and floors of 0.1 and 0.25."})
final class RouteEvalCommand implements Callable<Integer>, CommandContext.User {
    @Parameters(index = "0", paramLabel = "MODEL", description = "model folder or .gguf file")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "TEXT",
            description = "held-out text file (e.g. data/shakespeare/shakespeare.valid.txt)")
    Path data;

    @Option(names = {"--policy", "--policies"}, paramLabel = "SPEC",
            description = "a routing policy to measure (repeat for more), e.g. 'k=1' or 'top-p=0.8 max=4'")
    List<String> policies = new ArrayList<>();

    @Option(names = "--tokens", paramLabel = "N", defaultValue = "4096",
            description = "score the first N tokens of the text (default: ${DEFAULT-VALUE})")
    int tokens;

    @Option(names = "--context", paramLabel = "N",
            description = "tokens per window: the text is scored in windows that each start afresh (default: 512,"
                    + " or the model's context if shorter); the length the model was trained at is a fair choice")
    Integer window;

    @Option(names = "--decode-prompt", paramLabel = "N", defaultValue = "32",
            description = "tokens of the text that prompt the timed decoding (default: ${DEFAULT-VALUE})")
    int decodePrompt;

    @Option(names = "--decode-tokens", paramLabel = "N", defaultValue = "256",
            description = "tokens decoded per timed run (default: ${DEFAULT-VALUE})")
    int decodeTokens;

    @Option(names = "--runs", paramLabel = "N", defaultValue = "5",
            description = "timed decoding runs per policy (default: ${DEFAULT-VALUE})")
    int runs;

    @Option(names = "--json", description = "print one JSON object instead of the tables")
    boolean json;

    @Option(names = "--html", paramLabel = "FILE",
            description = "also write a self-contained HTML page: the table, quality against decode speed, and the"
                    + " routing statistics per layer (Apache ECharts inlined)")
    Path html;

    @Mixin
    DeviceOption device;

    @Spec
    CommandSpec spec;

    private CommandContext context;

    @Override
    public void context(CommandContext context) {
        this.context = context;
    }

    @Override
    public Integer call() {
        if (tokens < 2 || decodePrompt < 1 || decodeTokens < 2 || runs < 1 || (window != null && window < 2)) {
            throw new BadInputException("--tokens and --context must be at least 2, --decode-prompt 1, --decode-tokens"
                    + " 2 and --runs 1");
        }
        List<RoutingPolicy> asked = new ArrayList<>();
        for (String p : policies) {
            asked.add(RoutingPolicy.parse(p, "--policy"));
        }
        String text = TextFile.read("--data", data);
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Environment before = Environment.current();
        Instant started = Instant.now();
        try (ModelFolder m = ModelFolder.open(model, context.models().with(device.loadOptions()), device::backend)) {
            if (!(m.model() instanceof TransformerModel transformer)) {
                throw new BadInputException(model + ": route-eval needs a checkpoint moe4j runs itself");
            }
            MoeConfig moe = m.config().moe().orElseThrow(() -> new BadInputException(model
                    + ": route-eval measures MoE routing; this model has no MoE layers"));
            if (asked.isEmpty()) {
                asked = defaults(moe);
            }
            int[] ids = m.tokenizer().encodeIds(text, true);
            if (ids.length < 2) {
                throw new BadInputException(data + ": the text is " + ids.length + " token long; at least 2 are needed");
            }
            ids = Arrays.copyOf(ids, Math.min(ids.length, tokens));
            int length = window != null ? window : Math.min(512, m.config().maxPositions());
            var settings = new RouteEvaluation.Settings(length, Math.min(decodePrompt, ids.length), decodeTokens, runs);
            var result = RouteEvaluation.run(transformer, m.text(), ids, asked, settings, line -> {
                err.println("moe4j route-eval: " + line);
                err.flush();
            });
            Environment after = Environment.current();
            ObjectNode o = toJson(result, model, data, before, after, started);
            if (json) {
                out.println(Json.compact(o));
            } else {
                printTables(result, o, out);
            }
            if (html != null) {
                AtomicFiles.writeString(html, ReportPage.page("moe4j route-eval: " + model, o, "route-eval.js"));
                if (!json) {
                    out.println("page: " + html);
                }
            }
            out.flush();
            return 0;
        }
    }

    /** The policies measured when none are given, from the trained k and the expert count. */
    static List<RoutingPolicy> defaults(MoeConfig moe) {
        int k = moe.topK(), e = moe.experts();
        var specs = new ArrayList<String>();
        for (int x : new int[] {1, k - 1, k + 1, 2 * k}) {
            if (x >= 1 && x != k && x <= e && !specs.contains("k=" + x)) {
                specs.add("k=" + x);
            }
        }
        specs.addAll(List.of("top-p=0.5", "top-p=0.7", "top-p=0.9", "floor=0.1", "floor=0.25"));
        var out = new ArrayList<RoutingPolicy>();
        specs.forEach(s -> out.add(RoutingPolicy.parse(s, "--policy")));
        return out;
    }

    static ObjectNode toJson(RouteEvaluation.Result r, Path model, Path data, Environment before, Environment after,
                             Instant started) {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("model", model.toString());
        o.put("data", data.toString());
        o.put("tokens", r.tokens());
        o.put("windows", r.windows());
        o.put("context", r.settings().context());
        o.put("decode_prompt", r.settings().decodePrompt());
        o.put("decode_tokens", r.settings().decodeTokens());
        o.put("runs", r.settings().runs());
        o.put("trained_k", r.trainedK());
        o.put("experts", r.experts());
        o.put("expert_bytes", r.expertBytes());
        ArrayNode layers = o.putArray("moe_layers");
        r.moeLayers().forEach(layers::add);
        ObjectNode machine = o.putObject("machine");
        machine.put("cpu", before.cpu());
        machine.put("threads", before.threads());
        machine.put("vector_bits", before.vectorBits());
        machine.put("java", before.java());
        machine.put("load_average_before", before.loadAverage());
        machine.put("load_average_after", after.loadAverage());
        machine.put("started_utc", DateTimeFormatter.ISO_INSTANT.format(started.truncatedTo(java.time.temporal.ChronoUnit.SECONDS)));
        RouteEvaluation.PolicyResult base = r.policies().getFirst();
        ArrayNode rows = o.putArray("policies");
        for (RouteEvaluation.PolicyResult p : r.policies()) {
            ObjectNode row = rows.addObject();
            row.put("policy", p.policy().toString());
            row.put("perplexity", p.perplexity());
            row.put("perplexity_change", p.perplexity() / base.perplexity() - 1);
            row.put("mean_kl", p.meanKl());
            row.put("max_kl", p.maxKl());
            row.put("experts_per_token", p.meanExperts());
            row.put("active_parameters", p.activeParameters());
            row.put("bytes_per_token", p.bytesPerToken());
            double[] s = p.spread();
            ObjectNode decode = row.putObject("decode_tokens_per_s");
            decode.put("median", s[0]);
            decode.put("min", s[1]);
            decode.put("max", s[2]);
            ArrayNode all = decode.putArray("runs");
            for (double x : p.decodeTokensPerSecond()) {
                all.add(x);
            }
            row.put("speedup", s[0] / base.decodeMedian());
            row.put("bytes_speedup", base.bytesPerToken() / p.bytesPerToken());
            ArrayNode perLayer = row.putArray("layers");
            for (RouteEvaluation.LayerStats l : p.layers()) {
                ObjectNode lo = perLayer.addObject();
                lo.put("layer", l.layer());
                lo.put("experts_per_token", l.meanExperts());
                lo.put("entropy", l.entropy());
                lo.put("changed", l.changed());
                lo.put("dropped_trained", l.dropped());
                lo.put("added_untrained", l.added());
                lo.put("load_cv", cv(l.load()));
                ArrayNode load = lo.putArray("load");
                for (long x : l.load()) {
                    load.add(x);
                }
            }
        }
        return o;
    }

    /** Coefficient of variation of a load (population standard deviation over the mean). */
    static double cv(long[] load) {
        double mean = Arrays.stream(load).average().orElse(0);
        if (mean == 0) {
            return 0;
        }
        double var = 0;
        for (long x : load) {
            var += (x - mean) * (x - mean);
        }
        return Math.sqrt(var / load.length) / mean;
    }

    private static void printTables(RouteEvaluation.Result r, ObjectNode o, PrintWriter out) {
        var m = o.get("machine");
        out.printf(Locale.ROOT, "route-eval %s on %s: %d scored tokens in %d windows of %d; decode %d tokens after a"
                        + " %d-token prompt, %d timed runs each; %s, %d threads; load average %.2f before, %.2f after;"
                        + " %s%n", o.get("model").asText(), o.get("data").asText(), r.tokens(), r.windows(),
                r.settings().context(), r.settings().decodeTokens(), r.settings().decodePrompt(), r.settings().runs(),
                m.get("cpu").asText(), m.get("threads").asInt(), m.get("load_average_before").asDouble(),
                m.get("load_average_after").asDouble(), m.get("started_utc").asText());
        out.printf("%-28s %9s %8s %9s %8s %10s %9s %24s %8s %8s%n", "policy", "perplexity", "change", "mean KL",
                "experts", "active", "MB/token", "decode tok/s (min-max)", "speedup", "bytes");
        for (var p : o.get("policies")) {
            var d = p.get("decode_tokens_per_s");
            out.printf(Locale.ROOT, "%-28s %9.3f %+7.2f%% %9.4f %8.2f %9.2fM %9.2f %9.1f (%5.1f-%5.1f) %7.2fx %7.2fx%n",
                    p.get("policy").asText(), p.get("perplexity").asDouble(), 100 * p.get("perplexity_change").asDouble(),
                    p.get("mean_kl").asDouble(), p.get("experts_per_token").asDouble(),
                    p.get("active_parameters").asDouble() / 1e6, p.get("bytes_per_token").asDouble() / 1e6,
                    d.get("median").asDouble(), d.get("min").asDouble(), d.get("max").asDouble(),
                    p.get("speedup").asDouble(), p.get("bytes_speedup").asDouble());
        }
        out.println("(change: perplexity against the trained routing's; mean KL: nats per position from the trained"
                + " routing's next-token distribution; experts: per token and MoE layer; speedup: median decode"
                + " against the trained routing's; bytes: the speedup if decoding were bound by the weight bytes read)");
        out.println();
        out.printf("%-28s %6s %8s %8s %9s %9s %9s %8s%n", "policy", "layer", "experts", "entropy", "changed",
                "dropped", "added", "load CV");
        for (var p : o.get("policies")) {
            for (var l : p.get("layers")) {
                out.printf(Locale.ROOT, "%-28s %6d %8.2f %8.3f %8.1f%% %8.1f%% %8.1f%% %8.3f%n", p.get("policy").asText(),
                        l.get("layer").asInt(), l.get("experts_per_token").asDouble(), l.get("entropy").asDouble(),
                        100 * l.get("changed").asDouble(), 100 * l.get("dropped_trained").asDouble(),
                        100 * l.get("added_untrained").asDouble(), l.get("load_cv").asDouble());
            }
        }
        out.println("(changed: tokens whose experts differ from the trained top k of the same router scores; dropped:"
                + " tokens that did not take one of those; added: tokens that took an expert outside them; entropy: of"
                + " the router's probabilities, nats)");
    }
}
