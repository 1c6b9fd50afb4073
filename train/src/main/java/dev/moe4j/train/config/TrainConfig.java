package dev.moe4j.train.config;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.lora.LoraSettings;
import dev.moe4j.model.config.NormConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.PredictorOptions;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * A training run's configuration, read and checked from the resolved option values ({@link TrainSettings}) before
 * any work starts. The raw values are kept ({@link #values()}): they are what a checkpoint saves and what
 * {@code --resume} reads back.
 *
 * @param model the model to train from scratch (its vocabulary is the {@code --vocab} value until the tokenizer
 *              is known); empty when fine-tuning with {@code --init}
 */
public record TrainConfig(Map<String, String> values, Optional<ModelConfig> model, Optional<Path> init,
                          Optimiser optimiser, Data data, Run run, Optional<Lora> lora) {

    /**
     * LoRA fine-tuning: adapters made as {@code settings} say beside the frozen weights of the --init checkpoint,
     * which stay in the memory-mapped files with {@code mmap}.
     */
    public record Lora(LoraSettings settings, boolean mmap) {
    }

    /** How parameters are updated. */
    public record Optimiser(double lr, boolean cosine, int warmup, double minLrRatio, AdamW.Hyper hyper,
                            boolean decayAll, double clip, int batch, int accumulate, double biasBalancing) {
        /** The learning rate over {@code totalSteps}. */
        public LearningRateSchedule schedule(int totalSteps) {
            return new LearningRateSchedule(lr, warmup, totalSteps, cosine ? minLrRatio : 1, cosine);
        }
    }

    /**
     * Where the tokens come from.
     *
     * @param maxLength the longest example, 0 for the model's context
     */
    public record Data(List<Path> paths, int context, double validFraction, Optional<Path> tokenizer, int vocab,
                       boolean shuffle, Optional<Path> cache, Optional<Path> chatTemplate, int maxLength,
                       boolean packing) {
    }

    /** How long, what to report and where to save. */
    /** @param device cpu, cuda or auto (the command line resolves it to a backend) */
    public record Run(int steps, Duration time, int evalEvery, int evalBatches, int saveEvery, long seed, int threads,
                      String device, String name, Path out, boolean resume, String family, DType dtype, int samples,
                      int sampleTokens, String prompt, double temperature, int logEvery) {
    }

    public TrainConfig {
        values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
    }

    /** Checks and types every value of a resolved option map. */
    public static TrainConfig parse(Map<String, String> resolved) {
        var v = new Values(resolved);
        // Every switch is read here, not only where it matters, so that a value that is not true or false is an
        // error even for a switch these options leave unused (--shared-gate without shared experts).
        TrainSettings.ALL.stream().filter(Setting::isSwitch).forEach(s -> v.flag(s.key()));
        var data = new Data(v.list("data").stream().map(Path::of).toList(), v.integer("context", 2),
                v.number("valid-fraction", 0, 0.9),
                v.string("tokenizer").isEmpty() ? Optional.empty() : Optional.of(Path.of(v.string("tokenizer"))),
                v.integer("vocab", 2), v.flag("shuffle"),
                v.string("cache").isEmpty() ? Optional.empty() : Optional.of(Path.of(v.string("cache"))),
                v.string("chat-template").isEmpty() ? Optional.empty() : Optional.of(Path.of(v.string("chat-template"))),
                v.integer("max-length", 0), v.flag("packing"));
        if (data.maxLength() == 1) {
            throw new BadInputException("--max-length 1: an example needs at least 2 tokens (0: the model's context)");
        }
        if (data.paths().isEmpty()) {
            throw new BadInputException("--data: no training data given (expected text files, folders or a .jsonl)");
        }
        Optional<Path> init = v.string("init").isEmpty() ? Optional.empty() : Optional.of(Path.of(v.string("init")));
        Optional<ModelConfig> model = init.isPresent() ? Optional.empty()
                : Optional.of(modelConfig(v, data.vocab(), data.context()));
        String schedule = v.choice("schedule", "cosine", "constant");
        var optimiser = new Optimiser(v.number("lr", 0, 10), schedule.equals("cosine"), v.integer("warmup", 0),
                v.number("min-lr-ratio", 0, 1),
                hyper(v), v.flag("decay-all"), v.number("clip", 0, Double.MAX_VALUE), v.integer("batch", 1),
                v.integer("accumulate", 1), v.number("bias-balancing", 0, 1));
        String name = v.string("name");
        if (!name.isEmpty() && !isPlainName(name)) {
            throw new BadInputException("--name: expected a plain name (one folder under runs/, without / or ..), "
                    + "got '" + name + "'; to save elsewhere use --out DIR");
        }
        if (name.isEmpty()) {
            name = data.paths().size() == 1 && !data.paths().getFirst().equals(Path.of("data/shakespeare"))
                    ? stem(data.paths().getFirst()) + (init.isPresent() ? "-finetune" : "-moe") : "shakespeare-moe";
        }
        Path out = v.string("out").isEmpty() ? Path.of("runs", name) : Path.of(v.string("out"));
        Duration time = v.duration("time");
        int steps = v.integer("steps", 0);
        if (steps == 0 && time.isZero()) {
            throw new BadInputException("--steps 0 needs a --time budget (e.g. --time 5m)");
        }
        String dtype = v.choice("dtype", "f32", "bf16");
        var run = new Run(steps, time, v.integer("eval-every", 0), v.integer("eval-batches", 1),
                v.integer("save-every", 0), v.integer("seed", 0),
                v.integer("threads", 0), v.choice("device", "auto", "cpu", "cuda"), name, out, v.flag("resume"),
                v.choice("family", "auto", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "moe4j"),
                dtype.equals("bf16") ? DType.BF16 : DType.F32, v.integer("samples", 0),
                v.integer("sample-tokens", 1), v.string("prompt"), v.number("temperature", 0, 10),
                v.integer("log-every", 1));
        Optional<Lora> lora = Optional.empty();
        int rank = v.integer("lora-rank", 0);
        if (rank > 0) {
            if (init.isEmpty()) {
                throw new BadInputException("--lora-rank needs --init: LoRA trains adapters beside a Hugging Face "
                        + "checkpoint's frozen weights");
            }
            lora = Optional.of(new Lora(new LoraSettings(rank, v.number("lora-alpha", 0, 1e6),
                    LoraSettings.parseTargets(v.string("lora-targets")), v.flag("lora-rslora"), run.seed()),
                    v.flag("mmap")));
        }
        return new TrainConfig(resolved, model, init, optimiser, data, run, lora);
    }

    /** A name that is one folder inside runs/: not a path, and not one that climbs out. */
    private static boolean isPlainName(String name) {
        return !name.equals(".") && !name.equals("..") && name.chars().noneMatch(c -> c == '/' || c == '\\'
                || Character.isISOControl(c));
    }

    private static String stem(Path p) {
        String n = p.getFileName() == null ? "run" : p.getFileName().toString();
        int dot = n.indexOf('.');
        return dot > 0 ? n.substring(0, dot) : n;
    }

    private static AdamW.Hyper hyper(Values v) {
        try {
            return new AdamW.Hyper(v.number("beta1", 0, 1), v.number("beta2", 0, 1), v.number("eps", 0, 1),
                    v.number("weight-decay", 0, 10));
        } catch (IllegalArgumentException e) {
            throw new BadInputException("--beta1/--beta2/--eps: " + e.getMessage());
        }
    }

    /** The model the options describe, with {@code vocab} tokens; family "moe4j" (the saver picks the format). */
    static ModelConfig modelConfig(Values v, int vocab, int context) {
        int hidden = v.integer("hidden", 1), heads = v.integer("heads", 1);
        int kvHeads = v.integer("kv-heads", 0), headDim = v.integer("head-dim", 0);
        kvHeads = kvHeads == 0 ? heads : kvHeads;
        if (headDim == 0) {
            if (hidden % heads != 0) {
                throw new BadInputException("--hidden " + hidden + " is not a multiple of --heads " + heads
                        + " (set --head-dim)");
            }
            headDim = hidden / heads;
        }
        if (heads % kvHeads != 0) {
            throw new BadInputException("--heads " + heads + " is not a multiple of --kv-heads " + kvHeads);
        }
        int layers = v.integer("layers", 1), experts = v.integer("experts", 0), topK = v.integer("top-k", 1);
        int width = v.integer("expert-width", 1), g = v.integer("granularity", 1);
        int shared = v.integer("shared-experts", 0), every = v.integer("moe-every", 1);
        if (width % g != 0) {
            throw new BadInputException("--expert-width " + width + " is not a multiple of --granularity " + g);
        }
        int fine = width / g;
        String ffnName = v.choice("expert-ffn", "swiglu", "geglu", "relu", "gelu");
        ExpertFfn ffn = switch (ffnName) {
            case "swiglu" -> ExpertFfn.swiglu();
            case "geglu" -> ExpertFfn.gated(Activation.GELU);
            case "relu" -> ExpertFfn.plain(Activation.RELU);
            default -> ExpertFfn.plain(Activation.GELU);
        };
        Activation activation = switch (ffnName) {
            case "swiglu" -> Activation.SILU;
            case "relu" -> Activation.RELU;
            default -> Activation.GELU;
        };
        // Dense MLPs are gated (three matrices); a plain expert has two, so the same FLOPs need 2/3 of the width.
        int sharedWidth = shared * fine;
        int activeWidth = topK * width + sharedWidth;
        int denseWidth = ffn.gated() ? activeWidth : Math.max(1, Math.round(activeWidth * 2f / 3f));
        String qk = v.choice("qk-norm", "none", "per-head", "whole");
        var attention = new AttentionConfig.Standard(heads, kvHeads, headDim, v.flag("qkv-bias"), false,
                OptionalDouble.empty(), false);
        var builder = ModelConfig.builder().vocabSize(vocab).hiddenSize(hidden).attention(attention)
                .rope(RopeConfig.of(v.number("rope-theta", 1, Double.MAX_VALUE)))
                .norms(new NormConfig(v.number("norm-eps", Double.MIN_VALUE, 1), switch (qk) {
                    case "per-head" -> QkNorm.PER_HEAD;
                    case "whole" -> QkNorm.WHOLE_PROJECTION;
                    default -> QkNorm.NONE;
                }))
                .activation(activation).tieEmbeddings(v.flag("tie-embeddings"))
                .maxPositions(Math.max(context, 2048)).initializerRange(v.number("init-std", 0, 10));
        var specs = new ArrayList<LayerSpec>();
        for (int i = 0; i < layers; i++) {
            specs.add(new LayerSpec(experts > 0 && (i + 1) % every == 0, 0));
        }
        builder.layers(specs);
        if (specs.stream().anyMatch(s -> !s.moe())) {
            builder.denseIntermediateSize(denseWidth);
        }
        if (experts > 0 && specs.stream().anyMatch(LayerSpec::moe)) {
            builder.moe(moeConfig(v, hidden, experts * g, topK * g, fine, sharedWidth, ffn));
        }
        try {
            return builder.build();
        } catch (IllegalArgumentException e) {
            throw new BadInputException("model options: " + e.getMessage());
        }
    }

    private static MoeConfig moeConfig(Values v, int hidden, int experts, int topK, int width, int sharedWidth,
                                       ExpertFfn ffn) {
        String router = v.choice("router", "topk", "dense", "expert-choice", "soft");
        RouterKind kind = switch (router) {
            case "dense" -> RouterKind.DENSE;
            case "expert-choice" -> RouterKind.EXPERT_CHOICE;
            case "soft" -> RouterKind.SOFT;
            default -> RouterKind.TOP_K;
        };
        if (kind == RouterKind.TOP_K && topK > experts) {
            throw new BadInputException("--top-k " + topK + " is more than the " + experts + " experts");
        }
        GateOrder order = v.choice("gate-order", "softmax-then-topk", "topk-then-softmax").equals("topk-then-softmax")
                ? GateOrder.TOP_K_THEN_SOFTMAX : GateOrder.SOFTMAX_THEN_TOP_K;
        var b = MoeConfig.builder(hidden, width, experts, Math.min(topK, experts)).router(kind)
                .scoring(v.choice("scoring", "softmax", "sigmoid").equals("sigmoid") ? Scoring.SIGMOID : Scoring.SOFTMAX)
                .gateOrder(order)
                .normalizeTopK(v.flag("normalize-topk"))
                .routedScalingFactor(v.number("routed-scaling", Double.MIN_VALUE, 1e6))
                .routerBias(v.flag("router-bias"))
                .ffn(ffn)
                .sharedExpert(sharedWidth, sharedWidth > 0 && v.flag("shared-gate"))
                .seed(v.integer("seed", 0));
        int groups = v.integer("groups", 1), topGroups = v.integer("top-groups", 1);
        if (groups > 1) {
            b.groupLimit(GroupLimit.deepSeekV3(groups, topGroups));
        }
        double amount = v.number("noise-amount", 0, 1e3);
        b.noise(switch (v.choice("noise", "none", "jitter", "gaussian", "learned")) {
            case "jitter" -> Noise.jitter(amount);
            case "gaussian" -> Noise.gaussian(amount);
            case "learned" -> Noise.learnedGaussian();
            default -> Noise.none();
        });
        double factor = v.number("capacity-factor", 0, 1e6);
        if (factor > 0) {
            Capacity.Rounding rounding = switch (v.choice("capacity-rounding", "floor", "ceil", "round")) {
                case "floor" -> Capacity.Rounding.FLOOR;
                case "round" -> Capacity.Rounding.ROUND;
                default -> Capacity.Rounding.CEIL;
            };
            b.capacity(Capacity.factor(factor, rounding, v.integer("capacity-multiple", 1)));
        } else if (kind == RouterKind.EXPERT_CHOICE) {
            throw new BadInputException("--router expert-choice needs a --capacity-factor (e.g. 1 or 2): each "
                    + "expert takes factor x tokens / experts tokens");
        }
        ExpertChoiceDecode decode = switch (v.choice("expert-choice-decode", "threshold", "predictor", "batch")) {
            case "predictor" -> ExpertChoiceDecode.PREDICTOR;
            case "batch" -> ExpertChoiceDecode.BATCH_TOP_C;
            default -> ExpertChoiceDecode.THRESHOLD;
        };
        // The predictor trains only where it will route, so that the other variants' parameters stay as they were.
        PredictorOptions predictor = kind == RouterKind.EXPERT_CHOICE && decode == ExpertChoiceDecode.PREDICTOR
                ? new PredictorOptions(v.integer("predictor-width", 0), v.flag("predictor-stop-gradient"),
                        v.integer("predictor-top-k", 0), v.number("predictor-loss", 0, 1e6)) : null;
        if (predictor != null && predictor.topK() > experts) {
            throw new BadInputException("--predictor-top-k " + predictor.topK() + " is more than the " + experts
                    + " experts");
        }
        b.overflow(v.choice("overflow", "drop", "next-choice").equals("drop") ? Overflow.DROP : Overflow.NEXT_CHOICE)
                .priority(v.choice("priority", "position", "score").equals("score") ? Priority.SCORE : Priority.POSITION)
                .expertChoiceDecode(decode)
                .predictor(predictor)
                .thresholdMomentum(v.number("threshold-momentum", 0, 1))
                .slotsPerExpert(v.integer("slots-per-expert", 1))
                .softNormalize(v.flag("soft-normalize"));
        double coefficient = v.number("balance-coef", 0, 1e6);
        boolean tokenChoice = kind == RouterKind.TOP_K || kind == RouterKind.DENSE;
        String loss = v.choice("balance-loss", "auto", "switch", "switch-paper", "importance", "load", "importance+load",
                "sequence", "none");
        if (loss.equals("auto")) {
            loss = tokenChoice ? "switch" : "none";
        }
        ImportanceLoss importance = switch (v.choice("importance-of", "auto", "clean-softmax", "noisy-softmax",
                "top-k-gates")) {
            case "clean-softmax" -> new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX);
            case "noisy-softmax" -> new ImportanceLoss(ImportanceLoss.Of.NOISY_SOFTMAX);
            case "top-k-gates" -> new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES);
            default -> ImportanceLoss.ofPaper(order);
        };
        LoadLoss load = switch (v.choice("load-threshold", "auto", "kth-excluding-self", "kth-noisy")) {
            case "kth-excluding-self" -> new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF);
            case "kth-noisy" -> new LoadLoss(LoadLoss.Threshold.KTH_NOISY);
            default -> LoadLoss.ofPaper(order);
        };
        if (coefficient > 0) {
            switch (loss) {
                case "switch" -> b.loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), coefficient);
                case "switch-paper" -> b.loss(new SwitchLoss(SwitchLoss.Form.PAPER), coefficient);
                case "importance" -> b.loss(importance, coefficient);
                case "load" -> b.loss(load, coefficient);
                case "importance+load" -> b.loss(importance, coefficient).loss(load, coefficient);
                case "sequence" -> b.loss(new SequenceLoss(), coefficient);
                default -> { }
            }
        }
        double z = v.number("z-loss", 0, 1e6);
        if (z > 0) {
            b.loss(new RouterZLoss(), z);
        }
        if (v.number("bias-balancing", 0, 1) > 0) {
            b.selectionBias(true);
        }
        return b.build();
    }
}
