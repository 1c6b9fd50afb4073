package dev.moe4j.cli.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.core.perf.Environment;

import dev.moe4j.model.ModelFolder;
import dev.moe4j.server.ModelServer;
import dev.moe4j.server.ServeLimits;
import dev.moe4j.server.ServedModel;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * {@code moe4j bench serve}: the throughput and latency of {@code moe4j serve} under concurrent clients. A server is
 * started in this process on a free port; for each client count, that many clients stream completions of random
 * prompts at once, each several in a row, over HTTP as any OpenAI client would. Aggregate tokens/s against one
 * client's shows what decoding requests together buys; time to first token and the time between streamed chunks
 * show what it costs each of them.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measures serving: for each --clients count, that many concurrent streaming clients against"
                + " a moe4j server started in this process, on the CPU (decoding up to --parallel requests together):"
                + " aggregate"
                + " generated tokens/s, its ratio to one client's, time to first token and inter-chunk latency"
                + " (p50, p99).",
                "Prompts are random token ids, so any model works, a GGUF file from 'moe4j bench make-model --out"
                        + " X.gguf' included (a folder needs its tokenizer.json)."})
public final class BenchServeCommand implements Runnable {
    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf", description = "model folder or GGUF file")
    Path model;

    @Option(names = "--clients", split = ",", paramLabel = "N", defaultValue = "1,4,16",
            description = "concurrent clients, one measurement per count (default: ${DEFAULT-VALUE})")
    List<Integer> clients;

    @Option(names = "--requests", paramLabel = "N", defaultValue = "2",
            description = "completions each client asks for, one after the other (default: ${DEFAULT-VALUE})")
    int requests;

    @Option(names = "--prompt-tokens", paramLabel = "N", defaultValue = "64",
            description = "prompt length (default: ${DEFAULT-VALUE})")
    int promptTokens;

    @Option(names = "--shared-prefix", paramLabel = "N", defaultValue = "0",
            description = "tokens every prompt begins with (a system prompt; the rest of each prompt is its own),"
                    + " which the server's prefix cache can keep (default: ${DEFAULT-VALUE})")
    int sharedPrefix;

    @Option(names = "--prefix-cache-size", paramLabel = "SIZE", defaultValue = "256m",
            description = "the server's --prefix-cache-size (default: ${DEFAULT-VALUE}; 0: off)")
    String prefixCacheSize;

    @Option(names = "--max-tokens", paramLabel = "N", defaultValue = "64",
            description = "tokens generated per completion, at most (default: ${DEFAULT-VALUE})")
    int maxTokens;

    @Option(names = "--warm-ups", paramLabel = "N", defaultValue = "1", description = "untimed rounds first, each"
            + " of min(4, --parallel) clients asking one completion, while the JIT compiles the serving path (default:"
            + " ${DEFAULT-VALUE}; on two cores one round left the first measured row a fifth slower than a warm one)")
    int warmUps;

    @Option(names = "--parallel", paramLabel = "N",
            description = "requests the server decodes together (default: the largest --clients)")
    Integer parallel;

    @Mixin
    BenchOptions options;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** One client count's figures. */
    record Row(int clients, int completions, int errors, long tokens, double seconds, List<Double> firstToken,
               List<Double> interChunk) {
        double tokensPerSecond() {
            return tokens / seconds;
        }
    }

    /** What one streamed completion took. */
    private record Completion(boolean ok, long tokens, double firstToken, List<Double> gaps) {
    }

    @Override
    public void run() {
        if (clients.isEmpty() || clients.stream().anyMatch(c -> c < 1) || requests < 1 || promptTokens < 1
                || maxTokens < 1 || (parallel != null && parallel < 1)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--clients, --requests, --prompt-tokens,"
                    + " --max-tokens and --parallel must be at least 1");
        }
        if (warmUps < 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--warm-ups must be 0 or more, got "
                    + warmUps);
        }
        if (sharedPrefix < 0 || sharedPrefix > promptTokens) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--shared-prefix must be between 0 and"
                    + " --prompt-tokens (" + promptTokens + "), got " + sharedPrefix);
        }
        var limits = ServeLimits.DEFAULT.withPrefixCacheBytes(ServeLimits.parseSize(prefixCacheSize,
                "--prefix-cache-size"));
        options.applyThreads();
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        int places = parallel != null ? parallel : clients.stream().mapToInt(Integer::intValue).max().orElseThrow();
        var log = new StringWriter();
        try (var served = ServedModel.open(model, null, null, ModelFolder.Opener.CHECKPOINT, c -> CpuBackend.INSTANCE);
             var server = ModelServer.start(served, "127.0.0.1", 0, limits.withParallel(places),
                     new PrintWriter(log, true))) {
            int vocab = served.folder().config().vocabSize();
            int context = served.contextLength();
            int prompt = options.quick() ? Math.min(promptTokens, 8) : promptTokens;
            int budget = options.quick() ? Math.min(maxTokens, 4) : maxTokens;
            int warmUpRounds = options.quick() ? Math.min(warmUps, 1) : warmUps;
            if (prompt + budget > context) {
                throw new BadInputException("--prompt-tokens + --max-tokens (" + (prompt + budget)
                        + ") exceed the model's context of " + context);
            }
            var random = new SplittableRandom(7);
            int[] shared = random.ints(Math.min(sharedPrefix, prompt), 0, vocab).toArray();
            if (!options.json()) {
                out.printf("moe4j bench serve: %s; %s, up to %d requests decoded together; prompts of %d tokens"
                        + " (the first %d shared), prefix cache of %d bytes%n", env.describe(), model, places, prompt,
                        shared.length, limits.prefixCacheBytes());
                out.flush();
            }
            var http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            // warm-up: the JIT compiles the serving path at the measured shapes
            for (int w = 0; w < warmUpRounds; w++) {
                measure(http, server.uri(), Math.min(places, 4), 1, shared, prompt, budget, vocab, random);
            }
            var rows = new ArrayList<Row>();
            for (int c : clients) {
                rows.add(measure(http, server.uri(), c, options.quick() ? 1 : requests, shared, prompt, budget, vocab,
                        random));
                if (!options.json()) {
                    print(out, rows.getLast(), rows.getFirst());
                }
            }
            if (options.json()) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("benchmark", "serve");
                root.put("environment", BenchMatMulCommand.environment(env));
                root.put("model", model.toString());
                root.put("parallel", places);
                root.put("prompt_tokens", prompt);
                root.put("shared_prefix_tokens", shared.length);
                root.put("prefix_cache_bytes", limits.prefixCacheBytes());
                root.put("max_tokens", budget);
                root.put("warm_ups", warmUps);
                root.put("rows", rows.stream().map(r -> {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("clients", r.clients());
                    m.put("completions", r.completions());
                    m.put("errors", r.errors());
                    m.put("tokens", r.tokens());
                    m.put("seconds", r.seconds());
                    m.put("tokens_per_s", r.tokensPerSecond());
                    m.put("speedup_over_first_row", r.tokensPerSecond() / rows.getFirst().tokensPerSecond());
                    m.put("time_to_first_token_p50_p99", List.of(percentile(r.firstToken(), 50),
                            percentile(r.firstToken(), 99)));
                    m.put("inter_chunk_p50_p99", List.of(percentile(r.interChunk(), 50),
                            percentile(r.interChunk(), 99)));
                    return m;
                }).toList());
                out.println(Json.write(root));
            }
            out.flush();
        }
    }

    private static void print(PrintWriter out, Row r, Row first) {
        out.printf("  %3d clients: %8.2f tokens/s in all (%.2fx the first row's), %d completions, %d errors; time to"
                        + " first token p50 %.3f s p99 %.3f s; between chunks p50 %.4f s p99 %.4f s%n", r.clients(),
                r.tokensPerSecond(), r.tokensPerSecond() / first.tokensPerSecond(), r.completions(), r.errors(),
                percentile(r.firstToken(), 50), percentile(r.firstToken(), 99), percentile(r.interChunk(), 50),
                percentile(r.interChunk(), 99));
        out.flush();
    }

    /** {@code clients} virtual threads, each streaming {@code requests} completions one after the other. */
    private static Row measure(HttpClient http, URI base, int clients, int requests, int[] shared, int prompt,
                               int budget, int vocab, SplittableRandom random) {
        var bodies = new ArrayList<String>();
        for (int i = 0; i < clients * requests; i++) {
            int[] ids = java.util.stream.IntStream.concat(Arrays.stream(shared),
                    random.ints(prompt - shared.length, 0, vocab)).toArray();
            bodies.add("{\"prompt\": " + Arrays.toString(ids) + ", \"max_tokens\": "
                    + budget + ", \"temperature\": 0, \"stream\": true,"
                    + " \"stream_options\": {\"include_usage\": true}}");
        }
        long start = System.nanoTime();
        var results = new ArrayList<Future<List<Completion>>>();
        try (var threads = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int c = 0; c < clients; c++) {
                int first = c * requests;
                results.add(threads.submit(() -> {
                    var done = new ArrayList<Completion>();
                    for (int r = 0; r < requests; r++) {
                        done.add(complete(http, base, bodies.get(first + r)));
                    }
                    return done;
                }));
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        var firstTokens = new ArrayList<Double>();
        var gaps = new ArrayList<Double>();
        long tokens = 0;
        int ok = 0, errors = 0;
        for (var f : results) {
            for (Completion c : f.resultNow()) {
                if (c.ok()) {
                    ok++;
                    tokens += c.tokens();
                    firstTokens.add(c.firstToken());
                    gaps.addAll(c.gaps());
                } else {
                    errors++;
                }
            }
        }
        return new Row(clients, ok, errors, tokens, seconds, firstTokens, gaps);
    }

    /** One streamed completion: when its first text came, the gaps between chunks, and the tokens usage counts. */
    private static Completion complete(HttpClient http, URI base, String body) {
        long start = System.nanoTime();
        try {
            var response = http.send(HttpRequest.newBuilder(base.resolve("/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body))
                    .build(), HttpResponse.BodyHandlers.ofLines());
            if (response.statusCode() != 200) {
                response.body().close();
                return new Completion(false, 0, 0, List.of());
            }
            var gaps = new ArrayList<Double>();
            long[] last = {0};
            double[] first = {-1};
            long[] tokens = {0};
            response.body().forEach(line -> {
                if (!line.startsWith("data: {")) {
                    return;
                }
                long now = System.nanoTime();
                JsonNode chunk = dev.moe4j.io.json.Json.parse(line.substring(6), "a streamed chunk");
                JsonNode usage = chunk.get("usage");
                if (usage != null && !usage.isNull()) {
                    tokens[0] = usage.get("completion_tokens").asLong();
                }
                JsonNode choices = chunk.get("choices");
                if (choices != null && !choices.isEmpty() && !choices.get(0).get("text").asText().isEmpty()) {
                    if (first[0] < 0) {
                        first[0] = (now - start) / 1e9;
                    } else {
                        gaps.add((now - last[0]) / 1e9);
                    }
                    last[0] = now;
                }
            });
            return new Completion(true, tokens[0], Math.max(first[0], 0), gaps);
        } catch (java.io.IOException e) {
            return new Completion(false, 0, 0, List.of());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Completion(false, 0, 0, List.of());
        }
    }

    /** The p-th percentile (nearest rank) of {@code values}; 0 for none. */
    static double percentile(List<Double> values, double p) {
        if (values.isEmpty()) {
            return 0;
        }
        double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int rank = (int) Math.ceil(p / 100 * v.length);
        return v[Math.max(0, Math.min(v.length - 1, rank - 1))];
    }
}
