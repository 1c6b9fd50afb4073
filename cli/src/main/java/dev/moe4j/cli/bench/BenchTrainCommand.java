package dev.moe4j.cli.bench;

import dev.moe4j.core.perf.Environment;
import dev.moe4j.core.perf.MachineLimits;
import dev.moe4j.model.lora.LoraSettings;
import dev.moe4j.train.bench.TrainBenchmark;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code moe4j bench train}: whole training steps of a fixed MoE language model (4 layers, d = 512, 8 experts top-2
 * of width 1024, context 256) on random tokens, as tokens per second and model-FLOPs utilisation against the peak
 * FMA rate measured in the same run.
 */
@Command(name = "train",
        mixinStandardHelpOptions = true,
        description = {"Measures training speed: optimiser steps (forward, backward, clipping, AdamW) of a 4-layer, "
                + "d=512 MoE with 8 experts top-2 (width 1024) at context 256, on random tokens.",
                "Reports tokens/s and the model-FLOPs utilisation MFU = 6 x active parameters x tokens/s / peak FLOP/s,"
                        + " with the peak FMA rate measured before and after the steps (the better is used; the input"
                        + " embedding is not counted, nor attention's score products)."})
public final class BenchTrainCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    BenchOptions options;

    @Option(names = "--steps", paramLabel = "N", description = "Timed steps (default: 3, or 2 with --quick).")
    Integer steps;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "1",
            description = "Untimed steps first, for the JIT (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--batch", paramLabel = "N", description = "Sequences per step (default: 8; 1 with --lora).")
    Integer batch;

    @Option(names = "--lora", description = "Measure LoRA fine-tuning of the model folder --model instead: its weights "
            + "frozen and memory-mapped, adapters of --lora-rank on --lora-targets trained by AdamW, on random tokens; "
            + "reports tokens/s and the process's memory.")
    boolean lora;

    @Option(names = "--model", paramLabel = "DIR", description = "With --lora: the Hugging Face model folder to "
            + "fine-tune (e.g. one `moe4j bench make-model` wrote).")
    java.nio.file.Path model;

    @Option(names = "--lora-rank", paramLabel = "R", defaultValue = "8",
            description = "With --lora: the adapters' rank (default: ${DEFAULT-VALUE}).")
    int loraRank;

    @Option(names = "--lora-targets", paramLabel = "LIST", defaultValue = "q_proj,k_proj,v_proj,o_proj,experts",
            description = "With --lora: where adapters go, as moe4j train's --lora-targets (default: ${DEFAULT-VALUE}).")
    String loraTargets;

    @Option(names = "--context", paramLabel = "N", description = "With --lora: tokens per sequence (default: 128).")
    Integer context;

    @Option(names = "--copy", description = "With --lora: copy the weights into memory when they fit instead of "
            + "leaving them memory-mapped.")
    boolean copy;

    @Override
    public void run() {
        options.applyThreads();
        if (lora) {
            runLora();
            return;
        }
        if (model != null || context != null || copy) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--model, --context and --copy go with --lora");
        }
        int timed = steps != null ? steps : options.quick() ? 2 : 3;
        if (timed < 1 || warmup < 0 || (batch != null && batch < 1)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--steps and --batch must be at least 1, "
                    + "--warmup at least 0");
        }
        var shape = options.quick() ? TrainBenchmark.Shape.quick() : TrainBenchmark.Shape.standard();
        if (batch != null) {
            shape = new TrainBenchmark.Shape(shape.layers(), shape.hidden(), shape.heads(), shape.experts(),
                    shape.topK(), shape.expertWidth(), shape.vocab(), shape.context(), batch);
        }
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        MachineLimits before = options.measureLimits();
        if (!options.json()) {
            out.println("moe4j bench train: " + env.describe());
            out.printf("model: %d layers, d=%d, %d heads, %d experts top-%d of width %d, vocab %d; context %d, "
                            + "batch %d (%d tokens per step)%n", shape.layers(), shape.hidden(), shape.heads(),
                    shape.experts(), shape.topK(), shape.expertWidth(), shape.vocab(), shape.context(), shape.batch(),
                    shape.tokensPerStep());
            out.printf("peak FMA rate, measured now with %d threads: %.1f GFLOP/s%n", before.threads(),
                    before.peakGflops());
            out.flush();
        }
        TrainBenchmark.Result r = TrainBenchmark.run(shape, warmup, timed, 1);
        MachineLimits after = options.measureLimits();
        double peak = Math.max(before.peakGflops(), after.peakGflops());
        boolean disturbed = before.differsFrom(after, 0.15);
        if (options.json()) {
            Map<String, Object> root = new LinkedHashMap<>();
            root.put("benchmark", "train");
            root.put("environment", BenchMatMulCommand.environment(env));
            root.put("model", Map.of("layers", shape.layers(), "hidden", shape.hidden(), "experts", shape.experts(),
                    "top_k", shape.topK(), "expert_width", shape.expertWidth(), "context", shape.context(),
                    "batch", shape.batch()));
            root.put("active_parameters", r.activeParameters());
            root.put("seconds_per_step", java.util.Arrays.stream(r.stepSeconds()).boxed().toList());
            root.put("tokens_per_s", r.tokensPerSecond());
            root.put("model_gflops", r.modelGflops());
            root.put("peak_gflops", peak);
            root.put("peak_before_after", java.util.List.of(before.peakGflops(), after.peakGflops()));
            root.put("mfu", r.mfu(peak));
            root.put("mfu_best_step", r.bestModelGflops() / peak);
            root.put("disturbed", disturbed);
            out.println(Json.write(root));
        } else {
            out.printf("active parameters per token: %,d (input embedding not counted)%n", r.activeParameters());
            out.printf("%d timed steps after %d warmup: %.2f s per step (best %.2f s)%n", timed, warmup,
                    r.meanSecondsPerStep(), r.bestSecondsPerStep());
            out.printf("throughput: %.0f tokens/s, %.1f model GFLOP/s%n", r.tokensPerSecond(), r.modelGflops());
            out.printf("peak FMA rate again: %.1f GFLOP/s%s%n", after.peakGflops(),
                    disturbed ? "  (more than 15% apart: the machine was busy; rerun when it is quiet)" : "");
            out.printf("MFU: %.1f%% of %.1f GFLOP/s (best step: %.1f%%)%n", 100 * r.mfu(peak), peak,
                    100 * r.bestModelGflops() / peak);
        }
        out.flush();
    }

    private void runLora() {
        if (model == null) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--lora needs --model DIR (a model folder; "
                    + "`moe4j bench make-model --family olmoe ...` makes an OLMoE-shaped one)");
        }
        int timed = steps != null ? steps : 2, seqs = batch != null ? batch : 1, ctx = context != null ? context : 128;
        if (timed < 1 || warmup < 0 || seqs < 1 || ctx < 2) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--steps and --batch must be at least 1, "
                    + "--context at least 2, --warmup at least 0");
        }
        var settings = new LoraSettings(loraRank, 2.0 * loraRank, LoraSettings.parseTargets(loraTargets), false, 1);
        PrintWriter out = spec.commandLine().getOut();
        Environment env = Environment.current();
        if (!options.json()) {
            out.println("moe4j bench train --lora: " + env.describe());
            out.printf("model %s; LoRA rank %d on %s; batch %d x context %d, %d warmup and %d timed steps%n", model,
                    loraRank, String.join(", ", settings.targets()), seqs, ctx, warmup, timed);
            out.flush();
        }
        TrainBenchmark.LoraResult r = TrainBenchmark.runLora(model, settings, !copy, seqs, ctx, warmup, timed);
        var mem = r.memory();
        if (options.json()) {
            Map<String, Object> root = new LinkedHashMap<>();
            root.put("benchmark", "train-lora");
            root.put("environment", BenchMatMulCommand.environment(env));
            root.put("model", model.toString());
            root.put("total_parameters", r.totalParameters());
            root.put("active_parameters", r.activeParameters());
            root.put("trainable_parameters", r.trainableParameters());
            root.put("weights", r.weightsCopied() ? "copied" : "memory-mapped");
            root.put("tokens_per_step", r.tokensPerStep());
            root.put("seconds_per_step", java.util.Arrays.stream(r.stepSeconds()).boxed().toList());
            root.put("tokens_per_s", r.tokensPerSecond());
            root.put("model_gflops", r.modelGflops());
            root.put("losses", java.util.Arrays.stream(r.losses()).boxed().toList());
            root.put("peak_resident_bytes", mem.peakResident());
            root.put("anonymous_bytes", mem.anonymous());
            root.put("file_backed_bytes", mem.fileBacked());
            out.println(Json.write(root));
        } else {
            out.printf("parameters: %,d total, %,d active per token, %,d trainable (adapters); weights %s%n",
                    r.totalParameters(), r.activeParameters(), r.trainableParameters(),
                    r.weightsCopied() ? "copied into memory" : "memory-mapped");
            out.printf("%.1f s per step: %.2f tokens/s, %.1f model GFLOP/s (4 x active parameters per token)%n",
                    r.meanSecondsPerStep(), r.tokensPerSecond(), r.modelGflops());
            out.printf("memory: peak resident %.2f GiB; now %.2f GiB anonymous (heap, activations, adapters, AdamW) "
                            + "+ %.2f GiB of mapped checkpoint pages%n", mem.peakResident() / GIB,
                    mem.anonymous() / GIB, mem.fileBacked() / GIB);
        }
        out.flush();
    }

    private static final double GIB = 1024.0 * 1024 * 1024;
}
