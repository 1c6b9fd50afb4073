package dev.moe4j.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.Generation;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.SamplingConfig;
import dev.moe4j.model.generate.structured.JsonSchemas;
import dev.moe4j.model.generate.structured.StructuredOutput;
import dev.moe4j.model.generate.structured.TokenVocabulary;
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
import java.util.OptionalInt;
import java.util.concurrent.Callable;

/**
 * {@code moe4j generate}: continues a prompt with a model, streaming the text to stdout as it is produced, and
 * reports the time to the first token and the prefill and decode speeds on stderr.
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Continue a prompt with a model, streaming the continuation (not the prompt) to stdout.",
                "The prompt goes through the model in one pass, then tokens come one at a time until an EOS id"
                        + " (generation_config.json and config.json eos_token_id), a --stop text, --max-tokens or"
                        + " the end of the model's context.",
                "Decoding: a flag wins over generation_config.json (do_sample, temperature, top_k, top_p, min_p,"
                        + " repetition_penalty, max_new_tokens), which wins over transformers' defaults (greedy;"
                        + " when sampling, temperature 1 and top-k 50).",
                "Speeds go to stderr at the end: time to first token, prefill and decode tokens/s."})
final class GenerateCommand implements Callable<Integer>, CommandContext.User {
    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf",
            description = "model folder (config.json, tokenizer.json, safetensors weights, generation_config.json)"
                    + " or a .gguf file (weights, vocabulary and chat template in one file)")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt", paramLabel = "TEXT", description = "the prompt text (special tokens such as BOS"
                + " are added as the tokenizer says)")
        String text;

        @Option(names = "--prompt-ids", paramLabel = "IDS", description = "the prompt as token ids: 1,2,3")
        String ids;
    }

    @Mixin
    DeviceOption device;

    @Mixin
    SamplingOptions sampling;

    @Mixin
    TraceOption trace;

    @Mixin
    ShowExpertsOptions experts;

    @Mixin
    RoutingOptions routingOptions;

    @Option(names = "--json", description = "print one JSON object at the end instead of streaming: prompt and"
            + " output ids, text, stop reason, sampling, routing, timings and speeds")
    boolean json;

    @Option(names = "--json-schema", paramLabel = "FILE", description = "constrain the output to JSON valid under this"
            + " JSON schema (grammar-constrained decoding; the README's Serve section lists the keywords it takes)")
    Path jsonSchema;

    @Spec
    CommandSpec spec;

    private CommandContext context;

    @Override
    public void context(CommandContext context) {
        this.context = context;
    }

    /** The --json-schema constraint over the model's vocabulary, or null. */
    private StructuredOutput structured(ModelFolder m) {
        if (jsonSchema == null) {
            return null;
        }
        var shape = JsonSchemas.compile(Json.read(jsonSchema), jsonSchema.toString());
        return new StructuredOutput(shape, TokenVocabulary.of(m.tokenizer()), "--json-schema " + jsonSchema);
    }

    @Override
    public Integer call() {
        trace.check();
        experts.check();
        if (json && experts.enabled()) {
            throw new BadInputException("--show-experts colours the streamed text, which --json replaces; for each"
                    + " token's experts in JSON use --trace-experts FILE");
        }
        RoutingPolicy policy = routingOptions.policy();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (ModelFolder m = ModelFolder.open(model, context.models().with(device.loadOptions()), device::backend)) {
            m.model().checkRouting(policy, RoutingPolicy.Naming.flags());
            int[] ids = prompt.ids != null ? TokenIds.parse("--prompt-ids", prompt.ids)
                    : m.tokenizer().encodeIds(prompt.text, true);
            SamplingConfig samplingConfig = sampling.resolve(m.generation());
            OptionalInt layer = experts.showLayer(m.config());
            ExpertTrace routing = trace.enabled() || experts.enabled() ? new ExpertTrace() : null;
            var colours = new ExpertColors(layer.orElse(-1), layer.isPresent() && !json
                    && experts.colours(context.terminal()));
            var options = new GenerationOptions(sampling.maxNewTokens(m.generation()), samplingConfig,
                    m.eosTokenIds(), sampling.stops, routing, routing != null).withStructured(structured(m))
                    .withRouting(policy);
            GenerationListener stream = json ? GenerationListener.NONE : (text, position) -> {
                out.print(colours.paint(text, layer.isPresent() ? routing.firstExpert(position, layer.getAsInt())
                        : OptionalInt.empty()));
                out.flush();
            };

            Generation g = new Generator(m.model(), m.text()).generate(ids, options, stream);

            if (trace.enabled()) {
                trace.write(routing, TokenIds.concat(g.promptIds(), g.outputIds()), m.text());
            }
            if (json) {
                out.println(Json.compact(toJson(g, m.loadNanos())));
            } else {
                out.println();
                String legend = colours.legend();
                if (!legend.isEmpty()) {
                    out.println(legend);
                }
            }
            out.flush();
            err.println(summary(g, m.loadNanos(), sampling.seedGiven()));
            err.flush();
            return 0;
        }
    }

    /** One line for stderr: token counts, why it stopped, and the speeds. */
    static String summary(Generation g, long loadNanos, boolean seedGiven) {
        var t = g.timings();
        String s = String.format(Locale.ROOT, "moe4j: %d prompt + %d generated tokens (%s); load %.2f s;"
                        + " first token %.3f s; prefill %.1f tokens/s; decode %.1f tokens/s",
                g.promptIds().length, g.outputIds().length, g.stopReason().label().replace('_', ' '),
                loadNanos / 1e9, t.firstTokenNanos() / 1e9, t.prefillTokensPerSecond(),
                t.decodeTokensPerSecond());
        if (!g.routing().isTrained()) {
            s += "; routing " + g.routing();
        }
        if (g.sampling().sample() && !seedGiven) {
            s += "; seed " + g.sampling().seed();
        }
        return s;
    }

    static ObjectNode toJson(Generation g, long loadNanos) {
        ObjectNode o = Json.mapper().createObjectNode();
        var promptIds = o.putArray("prompt_ids");
        for (int id : g.promptIds()) {
            promptIds.add(id);
        }
        var outputIds = o.putArray("output_ids");
        for (int id : g.outputIds()) {
            outputIds.add(id);
        }
        o.put("text", g.text());
        o.put("stop_reason", g.stopReason().label());
        o.set("sampling", samplingJson(g.sampling()));
        o.put("routing", g.routing().toString());
        var t = g.timings();
        ObjectNode timings = o.putObject("timings_s");
        timings.put("load", loadNanos / 1e9);
        timings.put("prefill", t.prefillNanos() / 1e9);
        timings.put("time_to_first_token", t.firstTokenNanos() / 1e9);
        timings.put("decode", t.decodeNanos() / 1e9);
        long generating = t.firstTokenNanos() + t.decodeNanos();
        o.put("tokens_per_s", generating > 0 ? g.outputIds().length * 1e9 / generating : 0);
        o.put("prefill_tokens_per_s", t.prefillTokensPerSecond());
        o.put("decode_tokens_per_s", t.decodeTokensPerSecond());
        return o;
    }

    static ObjectNode samplingJson(SamplingConfig s) {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("do_sample", s.sample());
        if (s.sample()) {
            o.put("temperature", s.temperature());
            o.put("top_k", s.topK());
            o.put("top_p", s.topP());
            o.put("min_p", s.minP());
            o.put("seed", s.seed());
        }
        o.put("repetition_penalty", s.repetitionPenalty());
        return o;
    }
}
