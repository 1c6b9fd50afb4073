package dev.moe4j.train.bench;

import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.data.TokenStream;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Training speed of a fixed MoE language model on random tokens: tokens per second of whole optimiser steps
 * (forward, backward, clipping, AdamW) and the model-FLOPs utilisation 6 · active parameters · tokens/s / peak
 * FLOP/s. Active parameters leave out the input embedding, whose lookup does no arithmetic; attention's
 * score-times-value products are not counted (the usual 6N convention), so MFU understates the work done.
 */
public final class TrainBenchmark {
    private TrainBenchmark() {
    }

    /**
     * The benchmark's model.
     *
     * @param expertWidth each expert's hidden width
     */
    public record Shape(int layers, int hidden, int heads, int experts, int topK, int expertWidth, int vocab,
                        int context, int batch) {
        /** The benchmark: 4 layers, d = 512, 8 experts top-2 of width 1024, context 256, 8 sequences. */
        public static Shape standard() {
            return new Shape(4, 512, 8, 8, 2, 1024, 2048, 256, 8);
        }

        /** A model small enough to check the command in seconds. */
        public static Shape quick() {
            return new Shape(2, 64, 4, 4, 2, 128, 256, 64, 4);
        }

        public ModelConfig config() {
            var moe = MoeConfig.builder(hidden, expertWidth, experts, topK).normalizeTopK(true)
                    .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.01).build();
            return ModelConfig.builder().vocabSize(vocab).hiddenSize(hidden)
                    .attention(AttentionConfig.Standard.of(heads, heads, hidden / heads)).moeLayers(layers).moe(moe)
                    .maxPositions(context).build();
        }

        public long tokensPerStep() {
            return (long) context * batch;
        }
    }

    /**
     * @param activeParameters parameters one token's arithmetic uses (input embedding excluded)
     * @param stepSeconds      wall-clock time of each timed step
     * @param losses           of every step, warmup included (on random tokens they barely fall)
     */
    public record Result(Shape shape, long activeParameters, double[] stepSeconds, double[] losses) {
        public double meanSecondsPerStep() {
            return java.util.Arrays.stream(stepSeconds).average().orElse(Double.NaN);
        }

        public double bestSecondsPerStep() {
            return java.util.Arrays.stream(stepSeconds).min().orElse(Double.NaN);
        }

        /** Tokens per second over all timed steps. */
        public double tokensPerSecond() {
            return shape.tokensPerStep() / meanSecondsPerStep();
        }

        /** Model FLOP/s over all timed steps: 6 · active parameters per token (forward 2, backward 4). */
        public double modelGflops() {
            return 6.0 * activeParameters * tokensPerSecond() / 1e9;
        }

        /** Model FLOP/s of the fastest step. */
        public double bestModelGflops() {
            return 6.0 * activeParameters * shape.tokensPerStep() / bestSecondsPerStep() / 1e9;
        }

        public double mfu(double peakGflops) {
            return modelGflops() / peakGflops;
        }
    }

    /**
     * A LoRA fine-tuning benchmark's outcome.
     *
     * @param totalParameters     the base model's parameters (frozen)
     * @param trainableParameters the adapters' elements (what AdamW keeps moments for)
     * @param tokensPerStep       batch × context
     * @param stepSeconds         wall-clock time of each timed step
     * @param memory              the process's memory after the steps
     */
    public record LoraResult(long totalParameters, long activeParameters, long trainableParameters, long tokensPerStep,
                             double[] stepSeconds, double[] losses, boolean weightsCopied, Memory memory) {
        public double meanSecondsPerStep() {
            return java.util.Arrays.stream(stepSeconds).average().orElse(Double.NaN);
        }

        public double tokensPerSecond() {
            return tokensPerStep / meanSecondsPerStep();
        }

        /** Model FLOP/s by 4 · active parameters per token: forward 2, dL/dx 2; frozen weights take no gradient. */
        public double modelGflops() {
            return 4.0 * activeParameters * tokensPerSecond() / 1e9;
        }
    }

    /**
     * The process's memory as Linux reports it (/proc/self/status), in bytes: the peak resident set (anonymous memory
     * and the pages of mapped files it touched), and, now, its anonymous part (heap, activations, adapters and their
     * optimiser state) and its file-backed part (the mapped checkpoint, which the kernel can drop and read again).
     * -1 where the system does not say.
     */
    public record Memory(long peakResident, long anonymous, long fileBacked) {
        public static Memory now() {
            long peak = -1, anon = -1, file = -1;
            try {
                for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                    String[] f = line.split("\\s+");
                    if (f.length >= 2) {
                        switch (f[0]) {
                            case "VmHWM:" -> peak = Long.parseLong(f[1]) * 1024;
                            case "RssAnon:" -> anon = Long.parseLong(f[1]) * 1024;
                            case "RssFile:" -> file = Long.parseLong(f[1]) * 1024;
                            default -> {
                            }
                        }
                    }
                }
            } catch (java.io.IOException | NumberFormatException e) {
                // not Linux: unknown
            }
            return new Memory(peak, anon, file);
        }
    }

    /**
     * LoRA fine-tuning steps on random tokens: the model folder's weights frozen (memory-mapped with {@code mapped},
     * else copied when they fit), adapters of {@code settings} trained by AdamW; {@code warmup} untimed steps, then
     * {@code steps} timed ones.
     */
    public static LoraResult runLora(java.nio.file.Path folder, dev.moe4j.model.lora.LoraSettings settings,
                                     boolean mapped, int batch, int context, int warmup, int steps) {
        try (var m = dev.moe4j.model.ModelLoader.loadForLora(folder, mapped ? dev.moe4j.model.WeightMemory.MAPPED
                : dev.moe4j.model.WeightMemory.AUTO, settings, java.util.Optional.empty())) {
            Transformer model = m.transformer();
            ModelConfig config = model.config();
            var trainer = new Trainer(model, new AdamW.Hyper(0.9, 0.999, 1e-8, 0.0), AdamW.MATRICES_ONLY,
                    new Trainer.Settings(LearningRateSchedule.constant(1e-4), 1.0, 1, 0, settings.seed()));
            var random = new SplittableRandom(settings.seed());
            int[] tokens = new int[context * batch * 16 + 1];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = random.nextInt(config.vocabSize());
            }
            var sampler = new BatchSampler(new TokenStream(tokens, new int[] {0}, List.of("random")), batch, context,
                    settings.seed(), true);
            double[] losses = new double[warmup + steps];
            double[] seconds = new double[steps];
            for (int s = 0; s < warmup + steps; s++) {
                StepMetrics r = trainer.step(sampler::batch);
                losses[s] = r.loss();
                if (s >= warmup) {
                    seconds[s - warmup] = r.seconds();
                }
            }
            long trainable = trainer.parameters().values().stream().mapToLong(p -> p.value().size()).sum();
            var count = ParameterCount.of(config);
            return new LoraResult(count.total(), count.activeWithoutInputEmbedding(), trainable, (long) batch * context,
                    seconds, losses, m.weightsCopied(), Memory.now());
        }
    }

    /** Runs {@code warmup} untimed and then {@code steps} timed optimiser steps. */
    public static Result run(Shape shape, int warmup, int steps, long seed) {
        ModelConfig config = shape.config();
        Transformer model = Transformer.initialize(config, seed);
        var settings = new Trainer.Settings(LearningRateSchedule.constant(1e-3), 1.0, 1, 0, seed);
        var trainer = new Trainer(model, new AdamW.Hyper(0.9, 0.95, 1e-8, 0.1), AdamW.MATRICES_ONLY, settings);
        var random = new SplittableRandom(seed);
        int[] tokens = new int[shape.context() * shape.batch() * 64 + 1];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = random.nextInt(shape.vocab());
        }
        var sampler = new BatchSampler(new TokenStream(tokens, new int[] {0}, List.of("random")), shape.batch(),
                shape.context(), seed, true);
        double[] losses = new double[warmup + steps];
        double[] seconds = new double[steps];
        for (int s = 0; s < warmup + steps; s++) {
            StepMetrics m = trainer.step(sampler::batch);
            losses[s] = m.loss();
            if (s >= warmup) {
                seconds[s - warmup] = m.seconds();
            }
        }
        long active = ParameterCount.of(config).activeWithoutInputEmbedding();
        return new Result(shape, active, seconds, losses);
    }
}
