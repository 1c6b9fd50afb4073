package dev.moe4j.cli.bench;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.TopK;
import dev.moe4j.core.perf.Environment;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.cli.DeviceOption;
import dev.moe4j.cli.RoutingOptions;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.bench.GpuLimits;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.generate.Generation;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.TokenText;
import dev.moe4j.moe.router.RoutingPolicy;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code moe4j bench generate}: prefill and decode speed of a model, and decode as a fraction of the memory
 * bandwidth limit. Decoding one token reads every active weight once (attention, routers, the top-k experts of each
 * MoE layer, the LM head), so tokens/s cannot exceed bandwidth / active bytes per token.
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measures generation: prefill tokens/s (the prompt in one forward pass) and decode tokens/s (one"
                + " token at a time against the KV cache, greedy), the best of --runs.",
                "Decode is compared with its bandwidth limit: memory bandwidth (measured in the same run) / bytes of"
                        + " the weights one token reads (every weight but the input embedding and the experts it was"
                        + " not routed to).",
                "The prompt is random token ids, so any model folder with config.json and weights will do (see"
                        + " 'moe4j bench make-model')."})
public final class BenchGenerateCommand implements Runnable {
    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf", description = "model folder (config.json"
            + " and safetensors weights) or GGUF file")
    Path model;

    @Option(names = "--prompt-tokens", defaultValue = "128", paramLabel = "N",
            description = "prompt length for prefill (default: ${DEFAULT-VALUE})")
    int promptTokens;

    @Option(names = "--decode-tokens", defaultValue = "64", paramLabel = "N",
            description = "tokens decoded per run (default: ${DEFAULT-VALUE})")
    int decodeTokens;

    @Option(names = "--runs", defaultValue = "3", paramLabel = "N", description = "timed runs after the warm-up runs"
            + " (default: ${DEFAULT-VALUE})")
    int runs;

    @Option(names = "--warm-ups", paramLabel = "N", description = "untimed runs first, at the measured sizes, while"
            + " the JIT compiles the kernels (default: 1 on the CPU, 5 on a GPU, whose launch path takes a few)")
    Integer warmUps;

    @Option(names = "--sequences", split = ",", paramLabel = "N", description = "also decode N sequences together,"
            + " one batched step for all (each its own random prompt and KV cache), for each N given: aggregate decode"
            + " tokens/s against one sequence's (e.g. 4,16)")
    List<Integer> sequences = List.of();

    @Mixin
    BenchOptions options;

    @Mixin
    DeviceOption device;

    @Mixin
    RoutingOptions routing;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** One run's figures. */
    record Run(double prefillTokensPerSecond, double decodeTokensPerSecond, double firstTokenSeconds) {
    }

    @Override
    public void run() {
        validate();
        RoutingPolicy policy = routing.policy();
        options.applyThreads();
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        if (!options.json()) {
            out.println("moe4j bench generate: " + env.describe());
            out.flush();
        }
        Backend backend = device.backend(ModelLoader.config(model));
        Bandwidth bandwidth = backend.device() instanceof CudaDevice gpu ? Bandwidth.gpu(gpu, options.quick())
                : Bandwidth.cpu(options);
        if (!options.json() && backend.device() instanceof CudaDevice gpu) {
            out.println("on " + gpu.describe() + " (weights in " + gpu.precision().activationType() + ")");
        }
        MachineLimits before = bandwidth.measure();
        long loadStart = System.nanoTime();
        try (LanguageModel lm = ModelLoader.load(model, backend, device.loadOptions())) {
            double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
            lm.checkRouting(policy, RoutingPolicy.Naming.flags());
            ModelConfig config = lm.config();
            int prompt = options.quick() ? Math.min(promptTokens, 16) : promptTokens;
            int decode = options.quick() ? Math.min(decodeTokens, 4) : decodeTokens;
            if (prompt + decode > config.maxPositions()) {
                throw new BadInputException("--prompt-tokens + --decode-tokens (" + (prompt + decode) + ") exceed the"
                        + " model's context of " + config.maxPositions() + " positions");
            }
            int expertsPerToken = config.moe().map(m -> policy.expertsPerToken() > 0 ? policy.expertsPerToken()
                    : m.topK()).orElse(0);
            long activeBytes = activeBytesPerToken(lm, backend, expertsPerToken);
            if (!options.json()) {
                out.printf("model %s: %s, %d layers; %.1f MB of weights read per decoded token (%s); load %.1f s; %s%n",
                        model, config.family(), config.numLayers(), activeBytes / 1e6, weightTypes(lm), loadSeconds,
                        weightsWhere(lm));
                if (!policy.isTrained()) {
                    out.printf("routing %s%s%n", policy, policy.expertsPerToken() > 0 || config.moe().isEmpty() ? ""
                            : " (the bytes and limit count the trained k experts per token; the policy's vary)");
                }
                out.printf("memory bandwidth %.1f GB/s (measured now, %s): decode limit %.1f tokens/s%n",
                        before.bandwidthGBs(), bandwidth.how(before), before.bandwidthGBs() * 1e9 / activeBytes);
                out.flush();
            }
            var generator = new Generator(lm, SILENT);
            var random = new SplittableRandom(42);
            int[] ids = random.ints(prompt, 0, config.vocabSize()).toArray();
            var greedy = GenerationOptions.greedy(decode, Set.of()).withRouting(policy);
            // warm-up at the measured sizes: the JIT compiles the kernels for the shapes they will run at (on a GPU, the
            // host's whole launch path, which takes a few runs to compile)
            int warmUpRuns = warmUps != null ? warmUps : options.quick() || backend.device().isHost() ? 1 : 5;
            for (int w = 0; w < warmUpRuns; w++) {
                generator.generate(ids, greedy, GenerationListener.NONE);
            }
            List<Run> timed = new ArrayList<>();
            int[] outputIds = new int[0];
            for (int r = 0; r < (options.quick() ? 1 : runs); r++) {
                Generation g = generator.generate(ids, greedy, GenerationListener.NONE);
                outputIds = g.outputIds();
                var t = g.timings();
                timed.add(new Run(t.prefillTokensPerSecond(), t.decodeTokensPerSecond(),
                        t.firstTokenNanos() / 1e9));
                if (!options.json()) {
                    out.printf("  run %d: prefill %8.1f tokens/s   decode %7.2f tokens/s   first token %.3f s%n", r + 1,
                            timed.getLast().prefillTokensPerSecond(), timed.getLast().decodeTokensPerSecond(),
                            timed.getLast().firstTokenSeconds());
                    out.flush();
                }
            }
            double prefillBest = timed.stream().mapToDouble(Run::prefillTokensPerSecond).max().orElse(0);
            double decodeBest = timed.stream().mapToDouble(Run::decodeTokensPerSecond).max().orElse(0);
            var batched = new LinkedHashMap<Integer, List<Double>>();
            for (int n : sequences) {
                var rates = new ArrayList<Double>();
                for (int r = 0; r < (options.quick() ? 1 : runs) + 1; r++) {
                    double rate = batchedDecode(lm, n, prompt, decode, random, policy);
                    if (r > 0) { // the first is the JIT's warm-up at this batch size
                        rates.add(rate);
                    }
                }
                batched.put(n, spread(rates.stream().mapToDouble(Double::doubleValue)));
                if (!options.json()) {
                    out.printf("  %d sequences decoded together: %.2f tokens/s in all (median of %d; min %.2f, max %.2f)"
                            + " = %.2fx one sequence's median%n", n, batched.get(n).get(0), rates.size(),
                            batched.get(n).get(1), batched.get(n).get(2), batched.get(n).get(0)
                                    / spread(timed.stream().mapToDouble(Run::decodeTokensPerSecond)).get(0));
                    out.flush();
                }
            }
            MachineLimits after = bandwidth.measure();
            MachineLimits limits = before.best(after);
            boolean disturbed = before.differsFrom(after, 0.15);
            double limitTokensPerSecond = limits.bandwidthGBs() * 1e9 / activeBytes;
            if (options.json()) {
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("benchmark", "generate");
                root.put("environment", BenchMatMulCommand.environment(env));
                root.put("device", backend.device() instanceof CudaDevice gpu ? gpu.describe() : "cpu");
                root.put("model", model.toString());
                root.put("family", config.family());
                root.put("load_seconds", loadSeconds);
                root.put("weights", weightsWhere(lm));
                root.put("prompt_tokens", prompt);
                root.put("decode_tokens", decode);
                root.put("warm_ups", warmUpRuns);
                root.put("routing", policy.toString());
                root.put("experts_per_token", expertsPerToken);
                root.put("bandwidth_gbs", limits.bandwidthGBs());
                root.put("bandwidth_gbs_before_after", List.of(before.bandwidthGBs(), after.bandwidthGBs()));
                root.put("disturbed", disturbed);
                root.put("threads", limits.threads());
                root.put("active_bytes_per_token", activeBytes);
                root.put("decode_limit_tokens_per_s", limitTokensPerSecond);
                root.put("prefill_tokens_per_s", prefillBest);
                root.put("decode_tokens_per_s", decodeBest);
                root.put("decode_fraction_of_limit", decodeBest / limitTokensPerSecond);
                root.put("prefill_tokens_per_s_median_min_max", spread(timed.stream().mapToDouble(Run::prefillTokensPerSecond)));
                root.put("decode_tokens_per_s_median_min_max", spread(timed.stream().mapToDouble(Run::decodeTokensPerSecond)));
                root.put("batched_decode_tokens_per_s_median_min_max", batched);
                root.put("runs", timed.stream().map(t -> List.of(t.prefillTokensPerSecond(),
                        t.decodeTokensPerSecond())).toList());
                // The prompt and the greedy tokens, so that another engine can be run on the same ids and checked.
                root.put("prompt_ids", Arrays.stream(ids).boxed().toList());
                root.put("output_ids", Arrays.stream(outputIds).boxed().toList());
                out.println(Json.write(root));
            } else {
                out.printf("memory bandwidth again: %.1f GB/s%s%n", after.bandwidthGBs(), disturbed
                        ? "  (more than 15% apart: the machine was busy; rerun when it is quiet)" : "");
                out.printf("best: prefill %.1f tokens/s; decode %.2f tokens/s = %.1f%% of the bandwidth limit of"
                        + " %.1f tokens/s (%.1f GB/s / %.1f MB per token)%n", prefillBest, decodeBest,
                        100 * decodeBest / limitTokensPerSecond, limitTokensPerSecond, limits.bandwidthGBs(),
                        activeBytes / 1e6);
                List<Double> p = spread(timed.stream().mapToDouble(Run::prefillTokensPerSecond));
                List<Double> d = spread(timed.stream().mapToDouble(Run::decodeTokensPerSecond));
                out.printf("median (min-max) of %d runs: prefill %.1f (%.1f-%.1f) tokens/s; decode %.2f (%.2f-%.2f)"
                        + " tokens/s%n", timed.size(), p.get(0), p.get(1), p.get(2), d.get(0), d.get(1), d.get(2));
            }
            out.flush();
        }
    }

    /**
     * Decodes {@code n} sequences together, greedy, after prefilling each with its own random prompt: every step is
     * one batched forward over the n sequences' last tokens. Returns the decoded tokens of all sequences per second.
     */
    private static double batchedDecode(LanguageModel lm, int n, int prompt, int decode, SplittableRandom random,
                                        RoutingPolicy policy) {
        var states = new ArrayList<InferenceState>();
        var last = new ArrayList<int[]>();
        int vocab = lm.config().vocabSize();
        for (int i = 0; i < n; i++) {
            states.add(lm.newState(prompt + decode));
            states.getLast().routing(policy);
            Tensor logits = lm.forward(states.getLast(), random.ints(prompt, 0, vocab).toArray(), true, null);
            last.add(new int[] {bestToken(logits.toFloatArray(), 0, vocab)});
        }
        long start = System.nanoTime();
        for (int step = 1; step < decode; step++) {
            float[] logits = lm.forward(states, last).toFloatArray();
            for (int i = 0; i < n; i++) {
                last.set(i, new int[] {bestToken(logits, i * vocab, vocab)});
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        states.forEach(InferenceState::release);
        return (double) n * (decode - 1) / seconds;
    }

    /** The highest logit's token among logits[from .. from + vocab), by the routers' top-k (ties to the lower id). */
    private static int bestToken(float[] logits, int from, int vocab) {
        int[] id = new int[1];
        TopK.row(logits, from, vocab, 1, id, new float[1], 0);
        return id[0];
    }

    /**
     * The bytes of weights one decoded token reads: every active parameter but the input embedding (one row of it
     * is looked up), in the config's weight type, or on a GPU in its activation type (BF16, or F32 in F32
     * precision: it loads every matrix so). The KV cache adds a little that grows with the context.
     */
    static long activeBytesPerToken(ModelConfig config, Backend backend) {
        DType type = !backend.device().isHost() ? backend.activationType()
                : config.dtype().isKernelFloat() ? config.dtype() : DType.F32;
        return type.byteCount(ParameterCount.of(config).activeWithoutInputEmbedding());
    }

    /**
     * The same count from the weights a CPU model holds, each in its own type (a GGUF file mixes Q4_K, Q6_K, F32,
     * ...): every tensor but the input embedding (unless the LM head reads it), the routed experts' share top-k / E.
     */
    static long activeBytesPerToken(LanguageModel lm, Backend backend) {
        return activeBytesPerToken(lm, backend, lm.config().moe().map(m -> m.topK()).orElse(0));
    }

    /** {@link #activeBytesPerToken(LanguageModel, Backend)} for tokens that take {@code expertsPerToken} experts. */
    static long activeBytesPerToken(LanguageModel lm, Backend backend, int expertsPerToken) {
        ModelConfig config = lm.config();
        if (!(lm instanceof TransformerModel t) || !backend.device().isHost()) {
            long all = activeBytesPerToken(config, backend);
            return config.moe().map(m -> all + Math.round(expertBytes(config, backend)
                    * (double) (expertsPerToken - m.topK()) / m.experts())).orElse(all);
        }
        double routedShare = config.moe().map(m -> (double) expertsPerToken / m.experts()).orElse(1.0);
        double bytes = 0;
        for (var e : t.transformer().tensors().entrySet()) {
            String name = e.getKey();
            if (name.equals("embed_tokens.weight") && !config.tieEmbeddings()) {
                continue;
            }
            bytes += e.getValue().byteSize() * (name.contains(".moe.experts.") ? routedShare : 1.0);
        }
        return Math.round(bytes);
    }

    /** The bytes of all routed experts of all MoE layers, in the type {@link #activeBytesPerToken} counts them. */
    private static long expertBytes(ModelConfig config, Backend backend) {
        DType type = !backend.device().isHost() ? backend.activationType()
                : config.dtype().isKernelFloat() ? config.dtype() : DType.F32;
        var count = ParameterCount.of(config);
        return type.byteCount(count.routedExperts());
    }

    /** The weight types of a CPU model's matrices, most bytes first ("Q4_K, Q6_K, F32"), or the config's dtype. */
    private static String weightTypes(LanguageModel lm) {
        if (!(lm instanceof TransformerModel t) || !t.transformer().device().isHost()) {
            return lm.config().dtype().toString();
        }
        var bytes = new java.util.TreeMap<DType, Long>();
        t.transformer().tensors().values().forEach(w -> bytes.merge(w.dtype(), w.byteSize(), Long::sum));
        return bytes.entrySet().stream().sorted(java.util.Map.Entry.<DType, Long>comparingByValue().reversed())
                .map(e -> e.getKey().toString()).collect(java.util.stream.Collectors.joining(", "));
    }

    /** The memory bandwidth decode is held against: main memory's (CPU threads) or the GPU's (device copy). */
    private record Bandwidth(java.util.function.Supplier<MachineLimits> meter, boolean onGpu) {
        /**
         * The CPU's limit as a MachineLimits of no FMA rate: the median unit of the streaming read, since decoding
         * streams for seconds and the best 64 MiB unit can read far above the sustained rate.
         */
        static Bandwidth cpu(BenchOptions options) {
            return new Bandwidth(() -> new MachineLimits(0, options.measureBandwidth(2.0).medianGBs(), Parallel.threads()),
                    false);
        }

        static Bandwidth gpu(CudaDevice device, boolean quick) {
            // The GPU's limit as a MachineLimits of no FMA rate: a device-to-device copy, bytes read plus written.
            return new Bandwidth(() -> new MachineLimits(0, GpuLimits.measureBandwidth(device, quick) / 1e9, 1), true);
        }

        MachineLimits measure() {
            return meter.get();
        }

        String how(MachineLimits m) {
            return onGpu ? "GPU device-to-device copy, read + write" : m.threads() + " threads";
        }
    }

    /** Median, min and max of the runs' figures (the median of an even count is the mean of the middle two). */
    static List<Double> spread(java.util.stream.DoubleStream values) {
        double[] v = values.sorted().toArray();
        double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
        return List.of(median, v[0], v[v.length - 1]);
    }

    /** Where the weights were read from: a GPU, copies in memory, or the mapped checkpoint files (--mmap). */
    private static String weightsWhere(LanguageModel lm) {
        if (!(lm instanceof TransformerModel t) || !t.transformer().device().isHost()) {
            return "weights on the device";
        }
        return t.weightsCopied() ? "weights copied into memory" : "weights memory-mapped";
    }

    private void validate() {
        if (promptTokens < 1 || decodeTokens < 1 || runs < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--prompt-tokens, --decode-tokens and --runs"
                    + " must be at least 1");
        }
        if (warmUps != null && warmUps < 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--warm-ups must be 0 or more, got "
                    + warmUps);
        }
        if (sequences.stream().anyMatch(n -> n < 1)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--sequences: each count must be at least 1");
        }
        if (!sequences.isEmpty() && decodeTokens < 2) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--sequences needs --decode-tokens of at"
                    + " least 2: the first token of each sequence comes from its prompt");
        }
    }

    /** Generation needs text only to show it; a benchmark shows none. */
    private static final TokenText SILENT = new TokenText() {
        @Override
        public Incremental incremental() {
            return new Incremental() {
                @Override
                public String step(int id) {
                    return "";
                }

                @Override
                public String finish() {
                    return "";
                }
            };
        }

        @Override
        public String of(int id) {
            return "";
        }
    };
}
