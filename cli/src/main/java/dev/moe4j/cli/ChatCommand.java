package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.Generation;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.SequenceCache;
import dev.moe4j.moe.router.RoutingPolicy;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.Callable;

/**
 * {@code moe4j chat}: a conversation with a model in the terminal. Each line read from stdin is a user message;
 * the conversation so far goes through the model's chat template and the reply streams back. The KV cache is kept
 * from turn to turn ({@link SequenceCache}), so a turn feeds the model only what the conversation added.
 */
@Command(name = "chat", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Chat with a model: each line of input is a message; the reply streams back.",
                "The conversation is rendered with the model's chat template (chat_template of tokenizer_config.json,"
                        + " or --template FILE) every turn; the KV cache is kept between turns, so the model reads"
                        + " only the tokens the conversation added (--no-cache-reuse: all of them). Commands: /reset"
                        + " forgets the conversation, /exit (or end of input) ends the chat.",
                "Replies end at an EOS id (generation_config.json and config.json eos_token_id), a --stop text or"
                        + " --max-tokens. Decoding flags win over generation_config.json, which wins over"
                        + " transformers' defaults (greedy; when sampling, temperature 1 and top-k 50)."})
final class ChatCommand implements Callable<Integer>, CommandContext.User {
    /** ANSI faint and reset: on a terminal, a reply's reasoning is shown dimmed before its answer. */
    private static final String DIM = "\u001b[2m", PLAIN = "\u001b[0m";

    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf",
            description = "model folder (config.json, tokenizer.json, tokenizer_config.json, safetensors weights)"
                    + " or a .gguf file (its tokenizer.chat_template is the chat template)")
    Path model;

    @Option(names = "--template", paramLabel = "FILE",
            description = "a Jinja chat template to use instead of the model's")
    Path template;

    @Option(names = "--system", paramLabel = "TEXT", description = "a system message that opens the conversation")
    String system;

    @Option(names = "--no-cache-reuse", description = "feed the whole conversation every turn instead of keeping the"
            + " KV cache of the turns before (the same replies, more work; for comparison)")
    boolean noCacheReuse;

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
        experts.check();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ChatTemplate chatTemplate = ModelFolder.chatTemplate(model, template);
        RoutingPolicy policy = routingOptions.policy();
        try (ModelFolder m = ModelFolder.open(model, context.models().with(device.loadOptions()), device::backend)) {
            m.model().checkRouting(policy, RoutingPolicy.Naming.flags());
            // a model whose replies carry channels (gpt-oss's harmony) is read with its special tokens: the answer is
            // shown, its reasoning dimmed, and the history keeps them apart as the template expects
            var format = dev.moe4j.server.ReplyFormat.of(chatTemplate.text(), m.tokenizer(), m.eosTokenIds());
            var reading = format != null && format.alwaysRead() ? format : null;
            var generator = new Generator(m.model(), reading != null && reading.keepsSpecialTokens()
                    ? dev.moe4j.model.generate.TokenText.withSpecialTokens(m.tokenizer()) : m.text());
            OptionalInt layer = experts.showLayer(m.config());
            ExpertTrace routing = trace.enabled() || experts.enabled() ? new ExpertTrace() : null;
            var colours = new ExpertColors(layer.orElse(-1), layer.isPresent()
                    && experts.colours(context.terminal()));
            var traceLines = new ArrayList<String>();
            var history = opening();
            var kept = new SequenceCache();
            int[] previous = new int[0];
            int turn = 0;
            var input = new BufferedReader(new InputStreamReader(context.in(), StandardCharsets.UTF_8));
            if (context.terminal()) {
                err.println("moe4j chat: " + m.folder() + "; /reset forgets the conversation, /exit ends it");
                err.flush();
            }
            while (true) {
                if (context.terminal()) {
                    out.print("> ");
                    out.flush();
                }
                String line = readLine(input);
                if (line == null || line.strip().equals("/exit") || line.strip().equals("/quit")) {
                    break;
                }
                String message = line.strip();
                if (message.isEmpty()) {
                    continue;
                }
                if (message.equals("/reset")) {
                    history = opening();
                    kept.clear();
                    out.println("(conversation cleared)");
                    out.flush();
                    continue;
                }
                if (message.startsWith("/")) {
                    err.println("moe4j: unknown command " + message.split("\\s+")[0] + " (commands: /reset, /exit)");
                    err.flush();
                    continue;
                }
                var messages = new ArrayList<>(history);
                messages.add(new ChatTemplate.Message("user", message));
                try {
                    int[] ids = m.tokenizer().encodeIds(chatTemplate.render(messages, true), false);
                    if (routing != null) {
                        routing.clear();
                        routing.from(SequenceCache.commonPrefix(previous, ids));
                    }
                    var options = new GenerationOptions(sampling.maxNewTokens(m.generation()),
                            sampling.resolve(m.generation()), m.eosTokenIds(), sampling.stops, routing,
                            routing != null).withRouting(policy);
                    var cache = noCacheReuse ? new SequenceCache() : kept;
                    var raw = new StringBuilder();
                    int[] shown = new int[2]; // characters of the answer and of the reasoning printed so far
                    Generation g = generator.generate(cache, ids, options, (text, position) -> {
                        String piece = text;
                        if (reading != null) {
                            raw.append(text);
                            var r = reading.read(raw.toString(), false);
                            String answer = r.content() == null ? "" : r.content();
                            String thought = r.reasoning() == null ? "" : r.reasoning();
                            if (thought.length() > shown[1]) {
                                String more = thought.substring(shown[1]);
                                out.print(context.terminal() ? DIM + more + PLAIN : more);
                                shown[1] = thought.length();
                            }
                            piece = answer.length() > shown[0] ? answer.substring(shown[0]) : "";
                            if (!piece.isEmpty() && shown[0] == 0 && shown[1] > 0) {
                                out.println(); // the answer on a line of its own after the reasoning
                            }
                            shown[0] += piece.length();
                        }
                        out.print(colours.paint(piece, layer.isPresent()
                                ? routing.firstExpert(position, layer.getAsInt()) : OptionalInt.empty()));
                        out.flush();
                    });
                    out.println();
                    out.flush();
                    turn++;
                    if (reading != null) {
                        var r = reading.read(g.text(), true);
                        var fields = new java.util.LinkedHashMap<String, Object>();
                        if (r.reasoning() != null) {
                            fields.put("thinking", r.reasoning()); // the name gpt-oss's template reads
                        }
                        messages.add(new ChatTemplate.Message("assistant", r.content() == null ? "" : r.content(),
                                fields));
                    } else {
                        messages.add(new ChatTemplate.Message("assistant", g.text()));
                    }
                    history = messages;
                    previous = TokenIds.concat(ids, g.outputIds());
                    if (trace.enabled()) {
                        traceLines.addAll(routing.jsonLines(previous, m.text(), Map.of("turn", turn)));
                    }
                    err.println(String.format(Locale.ROOT, "(%d tokens, %s; prompt %d tokens, %d of them reused;"
                                    + " first token %.2f s, %.1f tokens/s)",
                            g.outputIds().length, g.stopReason().label().replace('_', ' '), ids.length,
                            g.reusedTokens(), g.timings().firstTokenNanos() / 1e9,
                            g.timings().decodeTokensPerSecond()));
                    err.flush();
                } catch (BadInputException e) {
                    // one turn that cannot run (too long for the context, refused by the template) ends only itself
                    err.println("moe4j: error: " + e.getMessage());
                    err.flush();
                }
            }
            if (trace.enabled()) {
                trace.write(traceLines);
            }
            String legend = colours.legend();
            if (!legend.isEmpty()) {
                out.println(legend);
            }
            out.flush();
            return 0;
        }
    }

    private List<ChatTemplate.Message> opening() {
        return system == null ? List.of() : List.of(new ChatTemplate.Message("system", system));
    }

    private static String readLine(BufferedReader in) {
        try {
            return in.readLine();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
