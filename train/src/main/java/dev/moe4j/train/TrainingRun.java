package dev.moe4j.train;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.config.SpecialTokens;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.checkpoint.RunLock;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.data.ExampleBatches;
import dev.moe4j.train.data.TokenCache;
import dev.moe4j.train.data.TrainingData;
import dev.moe4j.train.optim.AdamW;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * One {@code moe4j train} run from its {@link TrainConfig}: the data and tokenizer, the model (fresh, fine-tuned from
 * a Hugging Face checkpoint, or resumed), the steps with their metrics, evaluations and checkpoints, and samples at
 * the end. What happens is reported to a {@link Listener} (the command line draws its progress bar from it).
 */
public final class TrainingRun {
    /** Hears a run's progress; every method has an empty default. */
    public interface Listener {
        default void message(String text) {
        }

        default void started(Start start) {
        }

        default void step(StepMetrics metrics, Progress progress) {
        }

        default void evaluated(long step, double validLoss) {
        }

        default void saved(Path folder, long step) {
        }

        default void sample(String text) {
        }
    }

    /**
     * @param activeParameters per token, embeddings and LM head included (as model cards count)
     * @param fromStep         0, or the step a resumed run continues from
     */
    public record Start(String model, long totalParameters, long activeParameters, int totalSteps, long tokensPerStep,
                        long trainTokens, long validTokens, String data, Path out, long fromStep) {
    }

    /** @param totalSteps 0 while a time-budgeted run does not know its length yet */
    public record Progress(long step, int totalSteps, double elapsedSeconds, double etaSeconds) {
    }

    /** How a run ended. */
    public record Summary(long steps, double trainLoss, double validLoss, double seconds, Path out, String family,
                          List<String> samples, String prompt) {
    }

    private TrainingRun() {
    }

    /** What a new (not resumed) run does with a run already saved in its folder. */
    public enum ExistingRun {
        /** Refuse in one line that says how to continue it, name another folder or replace it. */
        REFUSE,
        /** Replace it (moe4j train --overwrite). */
        REPLACE
    }

    public static Summary run(TrainConfig config, Listener listener) {
        return run(config, listener, CpuBackend.INSTANCE, ExistingRun.REFUSE);
    }

    /**
     * One run whose forward and backward passes go to {@code backend}'s device (the command line resolves
     * {@code --device}); the optimiser, checkpoints and samples stay on the host. The run folder is this process's
     * alone until the run ends ({@link RunLock}); what a killed save left beside it is removed first.
     */
    public static Summary run(TrainConfig config, Listener listener, Backend backend, ExistingRun existing) {
        Path out = config.run().out();
        try (RunLock lock = RunLock.acquire(out)) {
            for (var abandoned : AtomicDirectory.removeAbandoned(out)) {
                listener.message(String.format(Locale.ROOT, "removed %s (%.1f MB), a checkpoint save that a stopped "
                        + "run left unfinished", abandoned.folder(), abandoned.bytes() / 1e6));
            }
            return locked(config, listener, backend, existing);
        }
    }

    private static Summary locked(TrainConfig config, Listener listener, Backend backend, ExistingRun existing) {
        var run = config.run();
        if (run.threads() > 0) {
            Parallel.setThreads(run.threads());
        }
        Path out = run.out();
        RunCheckpoint.State resumed = null;
        if (run.resume()) {
            if (!RunCheckpoint.exists(out)) {
                throw new BadInputException("--resume: " + out + " holds no saved run (expected " + RunCheckpoint.STATE
                        + " and " + RunCheckpoint.TRAIN_CONFIG + ")");
            }
            resumed = RunCheckpoint.state(out);
        } else {
            checkFolder(out, existing);
        }
        TokenCache cache = config.data().cache().map(TokenCache::new).orElseGet(TokenCache::defaultCache);
        Optional<Path> tokenizer = config.data().tokenizer();
        if (resumed != null && Files.isRegularFile(out.resolve("tokenizer.json"))) {
            tokenizer = Optional.of(out.resolve("tokenizer.json"));
        } else if (tokenizer.isEmpty() && config.init().isPresent()) {
            Path t = config.init().get().resolve("tokenizer.json");
            tokenizer = Files.isRegularFile(t) ? Optional.of(t) : Optional.empty();
        }
        if (tokenizer.isPresent() && !Files.isRegularFile(tokenizer.get())) {
            throw new BadInputException("--tokenizer: " + tokenizer.get() + ": no such file");
        }
        Path modelFolder = resumed != null ? out : config.init().orElse(null);
        boolean jsonl = config.data().paths().stream().anyMatch(p -> p.toString().toLowerCase(Locale.ROOT).endsWith(".jsonl"));
        TrainingData data = TrainingData.prepare(config.data().paths(), config.data().validFraction(), tokenizer,
                config.data().vocab(), cache, listener::message, jsonl ? exampleOptions(config, modelFolder) : null);

        TransformerModel frozenBase = config.lora().isPresent() ? loraModel(config, resumed, out, listener) : null;
        try (frozenBase) {
            Transformer model = frozenBase != null ? frozenBase.transformer() : model(config, data, resumed, out);
            return train(config, listener, backend, existing, data, resumed, model);
        }
    }

    /** The steps, evaluations, checkpoints and samples of a run whose data and model are ready. */
    private static Summary train(TrainConfig config, Listener listener, Backend backend, ExistingRun existing,
                                 TrainingData data, RunCheckpoint.State resumed, Transformer model) {
        var run = config.run();
        Path out = run.out();
        int vocab = model.config().vocabSize();
        if (data.vocabSize() > vocab) {
            throw new BadInputException("the tokenizer has " + data.vocabSize() + " ids but the model embeds " + vocab);
        }
        var opt = config.optimiser();
        int totalSteps = run.steps() > 0 ? run.steps() : resumed != null ? resumed.totalSteps() : 0;
        List<String> missing = new ArrayList<>(model.config().moe().map(MoeLayer::unsupportedOnDevice).orElse(List.of()));
        if (config.lora().isPresent()) {
            missing.add("LoRA adapters");
        }
        if (!backend.device().isHost() && !missing.isEmpty()) {
            if (!run.device().equals("auto")) {
                throw new BadInputException("--device cuda: the MoE layers use " + String.join(" and ", missing)
                        + ", which the GPU does not run yet; train with --device cpu");
            }
            listener.message("training on the CPU: the GPU does not run " + String.join(" and ", missing) + " yet");
            backend = CpuBackend.INSTANCE;
        }
        if (!backend.device().isHost()) {
            listener.message("forward and backward passes on " + backend.device().name()
                    + "; the optimiser on the host");
        }
        var trainer = new Trainer(model, opt.hyper(), opt.decayAll() ? AdamW.ALL : AdamW.MATRICES_ONLY,
                new Trainer.Settings(opt.schedule(totalSteps), opt.clip(), opt.accumulate(), opt.biasBalancing(), run.seed()),
                backend);
        // Example data goes one example a sequence unless --packing lays it end to end like text.
        boolean wholeExamples = data.examples() != null && !config.data().packing();
        Trainer.BatchSource batches;
        List<BatchSampler.Batch> evalBatches;
        long tokensPerStep;
        if (wholeExamples) {
            batches = new ExampleBatches(data.examples().train(), opt.batch(), run.seed(), config.data().shuffle())::batch;
            evalBatches = ExampleBatches.evaluationBatches(data.examples().validation(), opt.batch(), run.evalBatches());
            if (evalBatches.isEmpty()) {
                listener.message("no evaluation: no validation examples (--valid-fraction "
                        + config.data().validFraction() + " of " + data.examples().train().size() + " examples)");
            }
            double meanLength = (double) data.train().length() / data.examples().train().size();
            tokensPerStep = Math.round(opt.batch() * meanLength * opt.accumulate());
        } else {
            batches = new BatchSampler(data.train(), opt.batch(), config.data().context(), run.seed(),
                    config.data().shuffle())::batch;
            evalBatches = List.of(BatchSampler.evaluationBatches(data.validation(), opt.batch(),
                    config.data().context(), run.evalBatches()));
            if (evalBatches.isEmpty()) {
                listener.message("no evaluation: the validation split holds " + data.validation().length()
                        + " tokens, fewer than the " + ((long) opt.batch() * config.data().context() + 1)
                        + " of one batch (--batch " + opt.batch() + " x --context " + config.data().context() + " + 1)");
            }
            tokensPerStep = (long) opt.batch() * config.data().context() * opt.accumulate();
        }

        var metrics = new MetricsLog(out.resolve(RunCheckpoint.METRICS));
        String family;
        double elapsed = 0, validLoss = Double.NaN;
        long tokens = 0;
        if (resumed != null) {
            RunCheckpoint.restore(out, trainer, resumed);
            metrics.truncateAfter(resumed.step());
            family = resumed.family();
            elapsed = resumed.elapsedSeconds();
            tokens = resumed.tokens();
            validLoss = resumed.validLoss();
        } else {
            // LoRA saves adapters for the base's own family; full training chooses the format that fits.
            family = config.lora().isPresent() ? model.config().family()
                    : RunCheckpoint.chooseFamily(model.config(), run.family());
            prepareFolder(out, listener, existing);
        }
        ParameterCount count = ParameterCount.of(model.config());
        listener.started(new Start(describe(model.config(), family), count.total(), count.active(), totalSteps,
                tokensPerStep, data.train().length(), data.validation().length(), data.description(), out,
                trainer.steps()));

        var extras = new RunCheckpoint.Extras(data.tokenizerJson(), config.init().orElse(null), config.values(),
                generationConfig(model.config(), run.temperature()),
                config.data().chatTemplate().map(TrainingRun::readTemplate).orElse(null),
                config.lora().map(TrainConfig.Lora::settings).orElse(null));
        double lastLoss = Double.NaN;
        long timeBudgetMillis = run.time().toMillis();
        int estimateAfter = Math.max(opt.warmup(), 10);
        var remaining = new RemainingTime();
        while ((totalSteps == 0 || trainer.steps() < totalSteps)
                && (timeBudgetMillis == 0 || elapsed * 1000 < timeBudgetMillis)) {
            StepMetrics m = trainer.step(batches);
            elapsed += m.seconds();
            tokens += m.tokens();
            lastLoss = m.loss();
            metrics.step(m, elapsed);
            if (!Double.isFinite(m.loss())) {
                throw new TrainingDiverged(m.step(), m.loss());
            }
            long step = trainer.steps();
            if (totalSteps == 0 && step >= estimateAfter) {
                // A time budget without a step count: the schedule's length, fixed once the speed is known.
                double perStep = elapsed / step;
                totalSteps = (int) Math.max(step + 1, Math.floor(timeBudgetMillis / 1000.0 / perStep));
                trainer.schedule(opt.schedule(totalSteps));
                listener.message("the time budget allows about " + totalSteps + " steps");
            }
            remaining.step(m.seconds());
            double eta = totalSteps == 0 ? Double.NaN : remaining.seconds(totalSteps - step,
                    pausesLeft(step, totalSteps, run.evalEvery(), run.saveEvery(), !evalBatches.isEmpty()));
            if (timeBudgetMillis > 0) {
                double left = timeBudgetMillis / 1000.0 - elapsed;
                eta = Double.isNaN(eta) ? left : Math.min(eta, left);
            }
            listener.step(m, new Progress(step, totalSteps, elapsed, Math.max(0, eta)));
            boolean last = totalSteps > 0 && step >= totalSteps;
            boolean evaluate = !last && run.evalEvery() > 0 && step % run.evalEvery() == 0;
            boolean save = !last && (run.saveEvery() > 0 ? step % run.saveEvery() == 0 : evaluate);
            long pauseStarted = System.nanoTime();
            if (evaluate && !evalBatches.isEmpty()) {
                validLoss = trainer.evaluate(evalBatches);
                metrics.evaluation(step, validLoss);
                listener.evaluated(step, validLoss);
            }
            if (save) {
                RunCheckpoint.save(out, trainer, run.dtype(), extras,
                        new RunCheckpoint.State(step, tokens, elapsed, totalSteps, family, validLoss));
                listener.saved(out, step);
            }
            if (save || (evaluate && !evalBatches.isEmpty())) {
                remaining.pause((System.nanoTime() - pauseStarted) / 1e9);
            }
        }
        long step = trainer.steps();
        if (!evalBatches.isEmpty()) {
            validLoss = trainer.evaluate(evalBatches);
            metrics.evaluation(step, validLoss);
            listener.evaluated(step, validLoss);
        }
        RunCheckpoint.save(out, trainer, run.dtype(), extras,
                new RunCheckpoint.State(step, tokens, elapsed, Math.max(totalSteps, (int) step), family, validLoss));
        listener.saved(out, step);

        var samples = new ArrayList<String>();
        String prompt = run.prompt().isEmpty() ? defaultPrompt(data) : run.prompt();
        if (data.tokenizer() != null) {
            Set<Integer> stop = Set.copyOf(model.config().tokens().eos());
            for (int i = 0; i < run.samples(); i++) {
                String text = TextSampler.sample(model, data.tokenizer(), prompt, run.sampleTokens(),
                        run.temperature(), run.seed() + i, stop);
                samples.add(text);
                listener.sample(text);
            }
        }
        return new Summary(step, lastLoss, validLoss, elapsed, out, family, samples, prompt);
    }

    /**
     * Evaluations or checkpoints still to come after {@code step} of {@code totalSteps}, the one at the end
     * included: the steps the loop pauses at (an evaluation with {@code evaluates}, a checkpoint every
     * {@code saveEvery} steps, or at each evaluation step when that is 0).
     */
    static long pausesLeft(long step, long totalSteps, int evalEvery, int saveEvery, boolean evaluates) {
        long evalSteps = evalEvery > 0 && (evaluates || saveEvery == 0) ? evalEvery : 0;
        long saveSteps = saveEvery > 0 ? saveEvery : 0;
        long both = evalSteps > 0 && saveSteps > 0 ? evalSteps / gcd(evalSteps, saveSteps) * saveSteps : 0;
        return 1 + multiplesBetween(step, totalSteps, evalSteps) + multiplesBetween(step, totalSteps, saveSteps)
                - multiplesBetween(step, totalSteps, both);
    }

    /** Multiples of {@code k} strictly between {@code from} and {@code to}; none when k is 0. */
    private static long multiplesBetween(long from, long to, long k) {
        return k <= 0 || to - 1 <= from ? 0 : (to - 1) / k - from / k;
    }

    private static long gcd(long a, long b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    /**
     * Before any work: {@code out} can take a new run. A run saved there is refused unless {@code existing} says to
     * replace it; a folder that holds anything else, a file, or a folder this process cannot write is refused.
     */
    private static void checkFolder(Path out, ExistingRun existing) {
        if (RunCheckpoint.exists(out)) {
            if (existing == ExistingRun.REFUSE) {
                throw new BadInputException(out + " already holds a saved run: continue it with --resume, train "
                        + "under another --name (or --out), or replace it with --overwrite");
            }
        } else if (Files.isDirectory(out)) {
            try (var entries = Files.list(out)) {
                if (entries.findAny().isPresent()) {
                    throw new BadInputException("--out " + out + " exists and is not a moe4j run: choose another folder");
                }
            } catch (java.io.IOException e) {
                throw new BadInputException(out + ": cannot list (" + e.getMessage() + ")");
            }
        } else if (Files.exists(out)) {
            throw new BadInputException("--out " + out + " is a file, not a folder");
        }
        Path writable = Files.isDirectory(out) ? out : out.toAbsolutePath().normalize().getParent();
        if (!Files.isWritable(writable)) {
            throw new BadInputException("--out " + out + ": cannot write in " + writable + " (permission denied)");
        }
    }

    /** Makes {@code out} ready for the new run that {@link #checkFolder} accepted: empty, and there. */
    private static void prepareFolder(Path out, Listener listener, ExistingRun existing) {
        if (existing == ExistingRun.REPLACE && RunCheckpoint.exists(out)) {
            listener.message("replacing the run saved in " + out + " (--overwrite)");
            AtomicDirectory.deleteTree(out);
        }
        try {
            Files.createDirectories(out);
        } catch (java.io.IOException e) {
            throw new BadInputException(out + ": cannot create the run's folder (" + e.getMessage() + ")");
        }
    }

    /**
     * The --init checkpoint with its weights frozen and LoRA adapters beside them: new ones, or for --resume those the
     * run saved in its folder (in PEFT's format). Open (memory-mapped with --mmap) until the run ends.
     */
    private static TransformerModel loraModel(TrainConfig config, RunCheckpoint.State resumed, Path out,
                                              Listener listener) {
        TrainConfig.Lora lora = config.lora().orElseThrow();
        Path init = config.init().orElseThrow();
        TransformerModel m = ModelLoader.loadForLora(init, lora.mmap() ? WeightMemory.MAPPED : WeightMemory.AUTO,
                lora.settings(), resumed != null ? Optional.of(out) : Optional.empty());
        long trainable = m.transformer().adapters().values().stream().mapToLong(p -> p.value().size()).sum();
        var s = lora.settings();
        listener.message(String.format(Locale.ROOT, "LoRA rank %d, alpha %s on %s: %,d trainable parameters; the "
                        + "base weights frozen (%s)", s.rank(), s.alpha() == Math.rint(s.alpha()) ? String.valueOf((long) s.alpha()) : String.valueOf(s.alpha()), String.join(", ", s.targets()),
                trainable, m.weightsCopied() ? "copied into memory" : "memory-mapped"));
        return m;
    }

    /**
     * How example data is read: the chat template is --chat-template (with the model folder's special tokens), else
     * the model folder's (the --init model's, or a resumed run's, which saved the one it trained with); a new model,
     * or a folder without tokenizer_config.json, gets moe4j's template ({@link RunCheckpoint#CHAT_TEMPLATE}), which
     * its checkpoint will carry. The end-of-sequence id put after texts and completions is tokenizer_config.json's
     * eos_token, else the tokenizer's end-of-text token. Examples are cut to --max-length, or the model's context.
     */
    private static TrainingData.ExampleOptions exampleOptions(TrainConfig config, Path modelFolder) {
        Path tokenizerConfig = modelFolder == null ? null : modelFolder.resolve(RunCheckpoint.TOKENIZER_CONFIG);
        boolean hasConfig = tokenizerConfig != null && Files.isRegularFile(tokenizerConfig);
        Optional<Path> file = config.data().chatTemplate();
        java.util.function.Function<dev.moe4j.io.tokenizer.Tokenizer, ChatTemplate> template = tokenizer -> {
            if (hasConfig) {
                try {
                    return ModelFolder.chatTemplate(modelFolder, file.orElse(null));
                } catch (ChatTemplate.Missing e) {
                    throw new BadInputException(tokenizerConfig + " has no chat template: give one with --chat-template FILE");
                }
            }
            int eos = TrainingData.separator(tokenizer);
            var specials = eos < 0 ? Map.<String, String>of() : Map.of("eos_token", tokenizer.tokenString(eos).orElseThrow());
            return file.isPresent() ? ChatTemplate.of(file.get().toString(), readTemplate(file.get()), specials)
                    : ChatTemplate.of("moe4j's chat template", RunCheckpoint.CHAT_TEMPLATE, specials);
        };
        java.util.function.ToIntFunction<dev.moe4j.io.tokenizer.Tokenizer> eos = tokenizer -> {
            if (hasConfig) {
                var node = Json.read(tokenizerConfig).get("eos_token");
                String text = node == null ? null : node.isTextual() ? node.asText() : node.path("content").asText(null);
                if (text != null && tokenizer.tokenId(text).isPresent()) {
                    return tokenizer.tokenId(text).getAsInt();
                }
            }
            return TrainingData.separator(tokenizer);
        };
        int maxLength = config.data().maxLength() > 0 ? config.data().maxLength()
                : modelFolder != null && config.init().isPresent() ? ModelLoader.config(modelFolder).maxPositions()
                : config.model().orElseThrow().maxPositions();
        return new TrainingData.ExampleOptions(template, eos, maxLength);
    }

    private static String readTemplate(Path file) {
        try {
            return Files.readString(file);
        } catch (java.io.IOException e) {
            throw new BadInputException("--chat-template: " + file + ": cannot read ("
                    + (Files.exists(file) ? BadInputException.oneLine(e.getMessage()) : "no such file") + ")");
        }
    }

    /** The model to train: resumed from the run's folder, fine-tuned from --init, or fresh. */
    private static Transformer model(TrainConfig config, TrainingData data, RunCheckpoint.State resumed, Path out) {
        if (resumed != null) {
            if (config.init().isPresent()) {
                return ModelLoader.loadForTraining(out);
            }
            return ModelLoader.loadForTraining(out, fresh(config, data));
        }
        if (config.init().isPresent()) {
            return ModelLoader.loadForTraining(config.init().get());
        }
        return Transformer.initialize(fresh(config, data), config.run().seed());
    }

    /** The options' model, with the tokenizer's vocabulary and end-of-text token. */
    private static ModelConfig fresh(TrainConfig config, TrainingData data) {
        ModelConfig base = config.model().orElseThrow();
        int separator = data.tokenizer() == null ? -1 : TrainingData.separator(data.tokenizer());
        var tokens = new SpecialTokens(OptionalInt.empty(), separator >= 0 ? List.of(separator) : List.of(),
                OptionalInt.empty());
        return base.toBuilder().vocabSize(data.vocabSize()).tokens(tokens).build();
    }

    private static ObjectNode generationConfig(ModelConfig config, double temperature) {
        ObjectNode g = Json.mapper().createObjectNode();
        config.tokens().bos().ifPresent(b -> g.put("bos_token_id", b));
        if (config.tokens().eos().size() == 1) {
            g.put("eos_token_id", config.tokens().eos().getFirst());
        } else if (!config.tokens().eos().isEmpty()) {
            config.tokens().eos().forEach(g.putArray("eos_token_id")::add);
        }
        g.put("do_sample", true);
        g.put("temperature", temperature);
        g.put("top_k", 50);
        g.put("max_new_tokens", 200);
        return g;
    }

    /**
     * The start of the validation text, up to its first line end: for Shakespeare, a speaker's name. For example
     * data, what the first validation example (else training example) gives before its first labelled token: a
     * conversation up to the assistant's reply, a prompt.
     */
    private static String defaultPrompt(TrainingData data) {
        if (data.tokenizer() == null) {
            return "";
        }
        if (data.examples() != null) {
            var examples = data.examples().validation().isEmpty() ? data.examples().train() : data.examples().validation();
            return data.tokenizer().decode(examples.getFirst().prompt(), false);
        }
        if (data.validation().length() == 0) {
            return "";
        }
        int[] head = Arrays.copyOf(data.validation().tokens(), Math.min(24, data.validation().length()));
        String text = data.tokenizer().decode(head, true);
        int newline = text.indexOf('\n');
        return newline >= 0 ? text.substring(0, newline + 1) : text;
    }

    static String describe(ModelConfig c, String family) {
        String moe = c.moe().map(m -> m.experts() + " experts top-" + m.topK() + " of width " + m.intermediate()
                + (m.sharedIntermediate() > 0 ? " + shared " + m.sharedIntermediate() : "") + ", "
                + m.router().name().toLowerCase(java.util.Locale.ROOT) + " routing").orElse("dense MLP of width " + c.denseIntermediateSize());
        return c.numLayers() + " layers, d=" + c.hiddenSize() + ", " + c.attention().numHeads() + " heads, " + moe
                + ", vocab " + c.vocabSize() + " (saved as " + family + ")";
    }
}
