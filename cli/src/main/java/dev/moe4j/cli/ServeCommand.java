package dev.moe4j.cli;

import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.server.ModelServer;
import dev.moe4j.server.ServeLimits;
import dev.moe4j.server.ServedModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code moe4j serve}: the model behind an OpenAI-compatible HTTP API, and a page that colours each generated
 * token by its expert. Runs until interrupted (Ctrl-C).
 */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Serve a model over an OpenAI-compatible HTTP API until interrupted (Ctrl-C).",
                "Endpoints: POST /v1/chat/completions (messages through the chat template of tokenizer_config.json"
                        + " or --template), POST /v1/completions (a prompt text or token ids), both streamed as"
                        + " Server-Sent Events with \"stream\": true; GET /v1/models, GET /health, GET /metrics"
                        + " (Prometheus: requests, latencies, tokens, and each MoE layer's tokens per expert and"
                        + " imbalance); GET / is a page that streams a reply and colours each token by its first-choice"
                        + " expert in a chosen layer.",
                "Fields: max_tokens (or max_completion_tokens), temperature, top_p, presence_penalty, logprobs"
                        + " (chat: with top_logprobs up to 20; completions: up to 5 alternatives; the log-softmax of the"
                        + " model's logits before sampling),"
                        + " frequency_penalty, seed, stop, stream,"
                        + " stream_options.include_usage, n (up to 16 choices, each decoded as a sequence of its own);"
                        + " extensions top_k, min_p, repetition_penalty, and"
                        + " \"moe4j\": {\"experts\": true} (or ?experts=1), which adds to each chunk the generated"
                        + " tokens' first-ranked expert and gate weight per MoE layer;"
                        + " \"moe4j\": {\"routing\": {...}} routes the request's MoE layers by a policy whose fields"
                        + " are the routing flags below with underscores (experts_per_token, expert_top_p, min_experts,"
                        + " max_experts, expert_floor, expert_mask, force_experts, capacity_factor, capacity_overflow,"
                        + " capacity_priority; a mask as \"3:0,5\" or {\"3\": [0, 5]}); the routing flags set the"
                        + " policy of requests without one. Requests of different policies are decoded together in one"
                        + " pass, each row routed by its own. Unset fields come from"
                        + " generation_config.json, then transformers' defaults, as in moe4j generate.",
                "Up to --parallel requests are decoded together, one batched forward pass per step for all of them"
                        + " (continuous batching: a request joins and leaves between steps; long prompts go in chunks of"
                        + " 512 tokens a step); more wait and are started in arrival order. A client that disconnects"
                        + " stops its generation, streamed or not. Finished generations' KV caches are kept (as many as"
                        + " --parallel): a request whose prompt extends one (the next turn of a conversation) is fed"
                        + " only from where they differ (usage.prompt_tokens_details.cached_tokens).",
                "A request body larger than --max-request-bytes is refused (413) before it is parsed; a prompt"
                        + " text or max_tokens the context cannot hold is refused (400 context_length_exceeded).",
                "Each generation and each refused request is logged on stderr in one line."})
final class ServeCommand implements Callable<Integer>, CommandContext.User {
    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf",
            description = "model folder (config.json, tokenizer.json, safetensors weights; tokenizer_config.json"
                    + " (chat template) and generation_config.json if present) or a .gguf file")
    Path model;

    @Option(names = "--host", paramLabel = "HOST", defaultValue = "127.0.0.1",
            description = "address to listen on (default: ${DEFAULT-VALUE}, this machine only; 0.0.0.0 for every"
                    + " interface)")
    String host;

    @Option(names = "--port", paramLabel = "PORT", defaultValue = "8080",
            description = "port to listen on (default: ${DEFAULT-VALUE}; 0 picks a free one)")
    int port;

    @Option(names = "--template", paramLabel = "FILE",
            description = "a Jinja chat template to use instead of the model's")
    Path template;

    @Option(names = "--served-model-name", paramLabel = "NAME",
            description = "the model id of the API (default: the model folder's name, or the GGUF file's without .gguf)")
    String name;

    @Option(names = "--max-request-bytes", paramLabel = "N", defaultValue = "" + ModelServer.DEFAULT_MAX_REQUEST_BYTES,
            description = "refuse request bodies larger than N bytes with 413, unread (default: ${DEFAULT-VALUE},"
                    + " 4 MiB: a conversation filling a 128k-token context fits)")
    int maxRequestBytes;

    @Option(names = "--parallel", paramLabel = "N", defaultValue = "" + ModelServer.DEFAULT_PARALLEL,
            description = "requests decoded together, one batched forward pass per step; more wait their turn"
                    + " (default: ${DEFAULT-VALUE}). Each holds a KV cache of its own.")
    int parallel;

    @Option(names = "--max-waiting", paramLabel = "N", defaultValue = "" + ModelServer.DEFAULT_MAX_WAITING,
            description = "requests that may wait for a place; beyond, a request is answered 503 with Retry-After"
                    + " (default: ${DEFAULT-VALUE})")
    int maxWaiting;

    @Option(names = "--request-timeout", paramLabel = "SECONDS", defaultValue = "0",
            description = "stop a request that has taken longer than this since it arrived, waiting included, and"
                    + " answer 504 (mid-stream: an error event); 0, the default, is no limit")
    double requestTimeout;

    @Option(names = "--kv-cache-size", paramLabel = "SIZE",
            description = "KV cache memory the running requests may fill, each counted at its prompt plus its token"
                    + " budget (e.g. 8g; default: no limit beyond --parallel); a request that alone needs more is"
                    + " answered 400, others wait for room")
    String kvCacheSize;

    @Option(names = "--prefix-cache-size", paramLabel = "SIZE", defaultValue = "256m",
            description = "KV cache memory kept for later requests that begin alike (a shared system prompt, the next"
                    + " turn of a conversation), in blocks of 16 positions, beyond what running requests hold; the"
                    + " least recently used goes first (default: ${DEFAULT-VALUE}; 0: off). Host memory only, and only"
                    + " for models whose routing gives each token's result alone")
    String prefixCacheSize;

    @Mixin
    DeviceOption device;

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
        PrintWriter err = spec.commandLine().getErr();
        // checked before the model loads: a bad limit costs no loading time
        var limits = new ServeLimits(maxRequestBytes, parallel, maxWaiting,
                kvCacheSize == null ? 0 : ServeLimits.parseSize(kvCacheSize, "--kv-cache-size"), requestTimeout,
                ServeLimits.parseSize(prefixCacheSize, "--prefix-cache-size"));
        RoutingPolicy policy = routingOptions.policy();
        try (ServedModel opened = ServedModel.open(model, template, name,
                context.models().with(device.loadOptions()), device::backend);
             ModelServer server = ModelServer.start(opened.withRouting(policy), host, port, limits, err)) {
            ServedModel served = opened;
            Thread hook = new Thread(server::close, "moe4j-serve-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
            err.println(String.format(Locale.ROOT, "moe4j serve: %s (%s) on %s  (loaded in %.2f s; Ctrl-C stops)",
                    served.name(), served.folder().config().family(), server.uri(),
                    served.folder().loadNanos() / 1e9));
            if (!policy.isTrained()) {
                err.println("moe4j serve: requests route by " + policy + " unless they ask otherwise (moe4j.routing)");
            }
            if (served.chatTemplate() == null) {
                err.println("moe4j serve: /v1/chat/completions is off: " + served.noChatTemplate());
            }
            err.flush();
            try {
                server.awaitClose();
            } catch (InterruptedException e) {
                // the tests stop a server this way; Ctrl-C arrives through the shutdown hook
                Runtime.getRuntime().removeShutdownHook(hook);
            }
            return 0;
        }
    }
}
