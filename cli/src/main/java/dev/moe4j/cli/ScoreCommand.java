package dev.moe4j.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.Scorer;
import dev.moe4j.model.generate.TokenText;
import dev.moe4j.moe.router.RoutingPolicy;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code moe4j score}: how likely a model finds a text, token by token, and its perplexity. */
@Command(name = "score", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Score a text with a model: the log-probability of each token given the ones before it (the"
                + " log-softmax of the logits at the previous position) and the perplexity, exp(-mean).",
                "The first token has nothing before it and is not scored; a text gets the tokenizer's special tokens"
                        + " (e.g. BOS) first."})
final class ScoreCommand implements Callable<Integer>, CommandContext.User {
    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf",
            description = "model folder (config.json, tokenizer.json and safetensors weights) or a .gguf file")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = "--text", paramLabel = "TEXT", description = "the text to score")
        String text;

        @Option(names = "--prompt-ids", paramLabel = "IDS", description = "the token ids to score: 1,2,3")
        String ids;
    }

    @Mixin
    DeviceOption device;

    @Mixin
    TraceOption trace;

    @Mixin
    RoutingOptions routingOptions;

    @Option(names = "--json", description = "print one JSON object: ids, tokens, log_probs, perplexity, routing")
    boolean json;

    @Spec
    CommandSpec spec;

    private CommandContext context;

    @Override
    public void context(CommandContext context) {
        this.context = context;
    }

    @Override
    public Integer call() {
        trace.check();
        RoutingPolicy policy = routingOptions.policy();
        PrintWriter out = spec.commandLine().getOut();
        try (ModelFolder m = ModelFolder.open(model, context.models().with(device.loadOptions()), device::backend)) {
            m.model().checkRouting(policy, RoutingPolicy.Naming.flags());
            int[] ids = input.ids != null ? TokenIds.parse("--prompt-ids", input.ids)
                    : m.tokenizer().encodeIds(input.text, true);
            ExpertTrace routing = trace.enabled() ? new ExpertTrace() : null;
            Scorer.Scores scores = new Scorer(m.model()).score(ids, routing, policy);
            TokenText text = m.text();
            if (trace.enabled()) {
                trace.write(routing, ids, text);
            }
            if (json) {
                ObjectNode o = toJson(scores, text);
                o.put("routing", policy.toString());
                out.println(Json.compact(o));
            } else {
                printTable(scores, text, out);
                if (!policy.isTrained()) {
                    out.println("routing " + policy);
                }
            }
            out.flush();
            return 0;
        }
    }

    private static void printTable(Scorer.Scores s, TokenText text, PrintWriter out) {
        out.printf("%8s  %8s  %10s  %s%n", "position", "id", "log-prob", "token");
        int[] ids = s.ids();
        for (int t = 0; t < ids.length; t++) {
            String lp = t == 0 ? "" : String.format(Locale.ROOT, "%.4f", s.logProbs()[t - 1]);
            out.printf("%8d  %8d  %10s  %s%n", t, ids[t], lp, printable(text.of(ids[t])));
        }
        out.printf(Locale.ROOT, "perplexity %.4f over %d tokens (mean negative log-likelihood %.4f nats)%n",
                s.perplexity(), s.logProbs().length, s.meanNegativeLogLikelihood());
    }

    /** A token's text on one line: control characters escaped as in JSON. */
    private static String printable(String token) {
        return Json.compact(Json.mapper().getNodeFactory().textNode(token));
    }

    static ObjectNode toJson(Scorer.Scores s, TokenText text) {
        ObjectNode o = Json.mapper().createObjectNode();
        var ids = o.putArray("ids");
        var tokens = o.putArray("tokens");
        for (int id : s.ids()) {
            ids.add(id);
            tokens.add(text.of(id));
        }
        var lps = o.putArray("log_probs");
        lps.addNull(); // the first token is not predicted
        for (float lp : s.logProbs()) {
            lps.add(lp);
        }
        o.put("perplexity", s.perplexity());
        o.put("mean_nll", s.meanNegativeLogLikelihood());
        o.put("scored_tokens", s.logProbs().length);
        o.put("seconds", s.nanos() / 1e9);
        return o;
    }
}
