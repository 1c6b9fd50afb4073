package dev.moe4j.server;

import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.generate.BatchScheduler;
import dev.moe4j.model.generate.Generation;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What {@code GET /metrics} reports, in Prometheus' text format (the Prometheus Java client's registry and writer):
 * requests by endpoint and outcome, requests running and waiting, prompt tokens (and those whose keys and values
 * were cached), generated tokens, KV cache blocks held and cached, time to first token,
 * inter-token latency and request duration, and, per MoE layer, the tokens each expert computed (a counter) and
 * the imbalance of the last {@link #WINDOW} passes: the busiest expert's tokens over the mean (1 is perfectly
 * balanced, the expert count is everything on one expert).
 */
final class ServerMetrics implements LanguageModel.ExpertLoads {
    /** Forward passes over which the imbalance gauge is taken. */
    static final int WINDOW = 64;
    private static final double[] LATENCY_BOUNDS = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 60};

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    private final Counter requests;
    private final Counter promptTokens;
    private final Counter cachedPromptTokens;
    private final Counter generatedTokens;
    private final Histogram firstToken;
    private final Histogram interToken;
    private final Histogram duration;
    private final Counter expertTokens;
    private final Gauge imbalance;
    private final Map<Integer, Window> recent = new HashMap<>();

    /** One MoE layer's last {@link #WINDOW} passes, with their tokens per expert summed as passes come and go. */
    private static final class Window {
        final ArrayDeque<int[]> passes = new ArrayDeque<>();
        final long[] sum;
        long total;

        Window(int experts) {
            sum = new long[experts];
        }

        void add(int[] tokens, int sign) {
            for (int e = 0; e < tokens.length; e++) {
                sum[e] += sign * (long) tokens[e];
                total += sign * (long) tokens[e];
            }
        }
    }

    ServerMetrics(BatchScheduler scheduler, LanguageModel model) {
        requests = Counter.builder().name("moe4j_requests").help("Generation requests answered, by endpoint and "
                + "outcome (a finish reason, stopped or failed)").labelNames("endpoint", "outcome").register(registry);
        promptTokens = Counter.builder().name("moe4j_prompt_tokens").help("Prompt tokens of answered requests")
                .register(registry);
        cachedPromptTokens = Counter.builder().name("moe4j_prompt_tokens_cached").help("Prompt tokens of answered"
                + " requests whose keys and values were not computed again: kept from the request's cache or taken from"
                + " the prefix cache").register(registry);
        generatedTokens = Counter.builder().name("moe4j_generation_tokens").help("Tokens generated")
                .register(registry);
        firstToken = Histogram.builder().name("moe4j_time_to_first_token_seconds").help("From a request's arrival "
                + "to its first token, waiting included").classicOnly().classicUpperBounds(LATENCY_BOUNDS)
                .register(registry);
        interToken = Histogram.builder().name("moe4j_inter_token_latency_seconds").help("Time between two "
                + "consecutive tokens of a sequence being chosen").classicOnly().classicUpperBounds(LATENCY_BOUNDS)
                .register(registry);
        duration = Histogram.builder().name("moe4j_request_duration_seconds").help("From a request's arrival to "
                + "its last token").classicOnly().classicUpperBounds(LATENCY_BOUNDS).register(registry);
        GaugeWithCallback.builder().name("moe4j_requests_running").help("Sequences being decoded together")
                .callback(c -> c.call(scheduler.running())).register(registry);
        GaugeWithCallback.builder().name("moe4j_requests_waiting").help("Sequences waiting for a place")
                .callback(c -> c.call(scheduler.waiting())).register(registry);
        GaugeWithCallback.builder().name("moe4j_kv_cache_filled_bytes").help("KV cache bytes the running sequences"
                + " hold (their positions so far times the model's bytes per position)")
                .callback(c -> c.call(scheduler.kvFilledBytes())).register(registry);
        GaugeWithCallback.builder().name("moe4j_kv_cache_reserved_bytes").help("KV cache bytes reserved by the"
                + " running sequences, each at its prompt plus its token budget (what --kv-cache-size bounds)")
                .callback(c -> c.call(scheduler.kvReservedBytes())).register(registry);
        if (model.kvUsage() != null) {
            GaugeWithCallback.builder().name("moe4j_kv_cache_blocks").help("Blocks of KV cache (of "
                    + model.kvUsage().blockPositions() + " positions each): held by sequences, or kept by the prefix"
                    + " cache for later requests").labelNames("state").callback(c -> {
                        var usage = model.kvUsage();
                        c.call(usage.heldBlocks(), "held");
                        c.call(usage.cachedBlocks(), "cached");
                    }).register(registry);
            GaugeWithCallback.builder().name("moe4j_kv_cache_allocated_bytes").help("Memory allocated for KV"
                    + " cache blocks, held or free").callback(c -> c.call(model.kvUsage().allocatedBytes()))
                    .register(registry);
        }
        GaugeWithCallback.builder().name("moe4j_kv_cache_budget_bytes").help("--kv-cache-size in bytes, 0 for none")
                .callback(c -> c.call(scheduler.kvBudgetBytes())).register(registry);
        expertTokens = Counter.builder().name("moe4j_expert_tokens").help("Tokens each expert of each MoE layer "
                + "computed").labelNames("layer", "expert").register(registry);
        imbalance = Gauge.builder().name("moe4j_expert_imbalance").help("Per MoE layer, the busiest expert's "
                + "tokens over the mean over the last " + WINDOW + " forward passes").labelNames("layer")
                .register(registry);
    }

    /**
     * One answered request: its outcome, token counts and times ({@code arrival} and each generation's
     * {@code started}: System.nanoTime() when the request came and when its sequence was admitted; {@code gaps}: each
     * generation's nanoseconds between consecutive tokens).
     */
    void answered(String endpoint, String outcome, List<Generation> generations, long[] started, long[][] gaps,
                  long arrival) {
        requests.labelValues(endpoint, outcome).inc();
        double now = System.nanoTime();
        duration.observe((now - arrival) / 1e9);
        for (int i = 0; i < generations.size(); i++) {
            Generation g = generations.get(i);
            promptTokens.inc(g.promptIds().length);
            cachedPromptTokens.inc(g.reusedTokens());
            generatedTokens.inc(g.outputIds().length);
            var t = g.timings();
            firstToken.observe((started[i] - arrival + t.firstTokenNanos()) / 1e9);
            for (long gap : gaps[i]) {
                interToken.observe(gap / 1e9);
            }
        }
    }

    /** A request that ended without generations to count (refused, stopped or failed). */
    void ended(String endpoint, String outcome) {
        requests.labelValues(endpoint, outcome).inc();
    }

    @Override
    public synchronized void onPass(int layer, int[] tokens) {
        String name = Integer.toString(layer);
        for (int e = 0; e < tokens.length; e++) {
            if (tokens[e] > 0) {
                expertTokens.labelValues(name, Integer.toString(e)).inc(tokens[e]);
            }
        }
        var window = recent.computeIfAbsent(layer, l -> new Window(tokens.length));
        window.passes.addLast(tokens);
        window.add(tokens, 1);
        if (window.passes.size() > WINDOW) {
            window.add(window.passes.removeFirst(), -1);
        }
        long max = 0;
        for (long s : window.sum) {
            max = Math.max(max, s);
        }
        long total = window.total;
        imbalance.labelValues(name).set(total == 0 ? 0 : max / ((double) total / tokens.length));
    }

    String contentType() {
        return PrometheusTextFormatWriter.CONTENT_TYPE;
    }

    void write(OutputStream out) throws IOException {
        writer.write(out, registry.scrape());
    }
}
