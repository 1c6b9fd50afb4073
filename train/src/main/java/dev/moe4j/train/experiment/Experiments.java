package dev.moe4j.train.experiment;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The experiments of {@code moe4j experiment}, each a claim of the MoE papers tested at laptop scale.
 *
 * <p><b>Budget.</b> Every full-budget run is the same model as {@code moe4j train}'s default (4 layers, d = 128,
 * 4 heads, context 128, batch 16, 8 experts of width 256, top-2, SwiGLU) trained for 200 steps (409,600 tokens,
 * a little more than one pass over the Shakespeare training text), evaluated every 20 steps on 8 validation
 * batches: about 100 s per run on 2 cores, so that the whole suite with 2 seeds fits in two hours. {@code --quick}
 * keeps every variant's shape (expert counts, k, ratios of widths) on a 2-layer, d = 32 model for 12 steps.
 *
 * <p><b>Equal compute</b> means equal feed-forward multiply-adds per token ({@link ComputeBudget}): the active
 * expert width (k × expert width, plus shared experts) is the same in every variant of an experiment unless the
 * variant is about more compute (the dense model of equal total parameters). Routers that run every expert (dense
 * MoE) shrink the expert width by k / E; Soft MoE, whose experts run on slots shared by the n tokens of a batch,
 * gets E · S = n / 4 slots and an expert width of k · w · n / (E · S) = 4 · k · w.
 */
public final class Experiments {
    private Experiments() {
    }

    /** The model and budget every Shakespeare experiment starts from. */
    static final Map<String, String> COMMON = ordered(
            "data", "data/shakespeare", "layers", "4", "hidden", "128", "heads", "4", "experts", "8", "top-k", "2",
            "expert-width", "256", "context", "128", "batch", "16", "steps", "200", "warmup", "20",
            "eval-every", "20", "eval-batches", "8", "save-every", "1000000", "samples", "0");

    /** What {@code --quick} changes: a tiny model and a few steps, with the same experts and k. */
    static final Map<String, String> QUICK = ordered(
            "layers", "2", "hidden", "32", "heads", "2", "expert-width", "32", "vocab", "320", "context", "32",
            "batch", "4", "steps", "12", "warmup", "2", "eval-every", "4", "eval-batches", "2");

    public static final Experiment MOE_VS_DENSE = new Experiment("moe-vs-dense",
            "MoE against dense models of equal active and equal total parameters",
            "An MoE reaches a lower loss than a dense model of the same compute per token, for the same tokens "
                    + "(Shazeer et al. 2017; Switch Transformer; Mixtral): it needs fewer steps to reach the dense "
                    + "model's final loss.",
            COMMON, QUICK, b -> {
                int k = b.integer("top-k"), e = b.integer("experts"), w = b.integer("expert-width");
                return List.of(
                        new Variant("moe", "MoE 8 experts top-2", Map.of(),
                                e + " experts of width " + w + ", top-" + k + ": active FFN width " + k * w + "."),
                        new Variant("dense-active", "dense, equal active", Map.of("experts", "0"),
                                "a dense SwiGLU MLP of width k x w = " + k * w + ": the MoE's active parameters and "
                                        + "FLOPs per token."),
                        new Variant("dense-total", "dense, equal total", Map.of("experts", "0", "top-k", "" + e),
                                "a dense SwiGLU MLP of width E x w = " + e * w + ": the MoE's total parameters, "
                                        + e / k + "x its FFN FLOPs per token."));
            }, false);

    public static final Experiment ROUTING = new Experiment("routing",
            "Routers at equal compute: token choice, expert choice, Soft MoE, dense MoE",
            "Expert choice balances load perfectly but token choice gives the better model in a decoder "
                    + "(OLMoE's ablation), where expert choice cannot see the later tokens it was trained to pick "
                    + "among (a predictor trained beside the router, as in Mixture-of-Depths, routes causally); Soft "
                    + "MoE and dense mixtures spend compute on every expert.",
            COMMON, QUICK, b -> {
                int k = b.integer("top-k"), e = b.integer("experts"), w = b.integer("expert-width");
                int n = b.tokensPerForward();
                int slots = Math.max(1, n / (4 * e));
                int softWidth = (int) Math.round((double) k * w * n / ((double) e * slots));
                return List.of(
                        new Variant("top1", "top-1 (Switch)", Map.of("top-k", "1", "expert-width", "" + k * w),
                                "one expert of width " + k * w + " per token (twice the width: equal FLOPs)."),
                        new Variant("top2", "top-2", Map.of(), "two experts of width " + w + " per token."),
                        new Variant("noisy-top2", "noisy top-2", Map.of("noise", "learned",
                                "gate-order", "topk-then-softmax"),
                                "Shazeer et al.'s noisy top-k gating: learned Gaussian noise, softmax over the kept "
                                        + "logits."),
                        new Variant("expert-choice", "expert choice, threshold decoding", Map.of("router",
                                "expert-choice", "capacity-factor", "" + k),
                                "each expert takes its top " + k + " x n / E tokens of the batch (" + k
                                        + " experts per token on average); causal thresholds at evaluation."),
                        new Variant("expert-choice-predictor", "expert choice, predictor decoding", Map.of("router",
                                "expert-choice", "capacity-factor", "" + k, "expert-choice-decode", "predictor"),
                                "expert choice as above, with a predictor beside each router (an MLP of width 64, "
                                        + "gradient stopped, as Mixture-of-Depths) trained on the batch's selections; "
                                        + "at evaluation a token goes to each expert it predicts at 0.5 or more."),
                        new Variant("soft", "Soft MoE", Map.of("router", "soft", "slots-per-expert", "" + slots,
                                "expert-width", "" + softWidth),
                                e + " experts x " + slots + " slots over the batch's " + n + " tokens, width "
                                        + softWidth + " (= k w n / (E S)): equal expert FLOPs per token, plus "
                                        + "dispatch and combine; slots mix tokens across positions and sequences."),
                        new Variant("dense-moe", "dense MoE (all experts)", Map.of("router", "dense",
                                "expert-width", "" + Math.max(1, k * w / e), "balance-loss", "none"),
                                "every token through all " + e + " experts of width " + k * w / e
                                        + " (k w / E), weighted by the softmax."));
            }, false);

    public static final Experiment BALANCE = new Experiment("balance",
            "Load balancing: none, Switch loss, importance + load, auxiliary-loss-free bias",
            "Without a balancing term routing collapses onto a few experts (dead experts); the Switch loss, "
                    + "Shazeer's importance and load losses and DeepSeek-V3's loss-free bias keep experts alive, the "
                    + "bias without hurting the language-model loss.",
            COMMON, QUICK, b -> List.of(
                    new Variant("none", "no balancing", Map.of("balance-loss", "none"), "cross-entropy only."),
                    new Variant("switch", "Switch loss", Map.of("balance-loss", "switch"),
                            "0.01 x E x sum f_i P_i (transformers' form)."),
                    new Variant("importance+load", "importance + load", Map.of("balance-loss", "importance+load",
                            "noise", "learned", "gate-order", "topk-then-softmax"),
                            "Shazeer et al. 2017: noisy top-k gating with 0.01 x CV^2 of importance and of the "
                                    + "smooth load."),
                    new Variant("aux-free", "loss-free bias", Map.of("balance-loss", "none",
                            "bias-balancing", "0.001"),
                            "DeepSeek-V3: a selection bias moved by 0.001 x sign(mean load - load) after each step.")),
            false);

    public static final Experiment CAPACITY = new Experiment("capacity",
            "Capacity factor: dropped tokens against loss and time",
            "A capacity factor bounds each expert's tokens (C = factor x n x k / E): low factors drop tokens and "
                    + "hurt quality, high ones cost compute and memory; 1.0-1.25 is the usual trade (Switch "
                    + "Transformer, GShard); re-routing overflow to the next choice recovers some of the loss.",
            COMMON, QUICK, b -> {
                var out = new ArrayList<Variant>();
                for (String f : List.of("0.5", "1", "1.25", "2")) {
                    out.add(new Variant("cf" + f + "-drop", "factor " + f + ", drop",
                            Map.of("capacity-factor", f, "overflow", "drop"),
                            "capacity " + f + " x n k / E per expert; overflowing choices dropped (the residual "
                                    + "carries them)."));
                    out.add(new Variant("cf" + f + "-reroute", "factor " + f + ", re-route",
                            Map.of("capacity-factor", f, "overflow", "next-choice"),
                            "capacity " + f + " x n k / E; an overflowing choice goes to the next-best expert "
                                    + "with room."));
                }
                out.add(new Variant("dropless", "dropless", Map.of("capacity-factor", "0"),
                        "no capacity: every choice is served."));
                return out;
            }, false);

    public static final Experiment GRANULARITY = new Experiment("granularity",
            "Fine-grained and shared experts (DeepSeekMoE)",
            "At equal active compute, many small experts (more combinations per token) beat a few large ones, and "
                    + "an always-on shared expert that takes common knowledge helps further (DeepSeekMoE).",
            COMMON, QUICK, b -> {
                int k = b.integer("top-k"), e = b.integer("experts"), w = b.integer("expert-width");
                int g = 4, fine = w / g;
                return List.of(
                        new Variant("coarse", e + " experts top-" + k, Map.of(),
                                e + " experts of width " + w + ", top-" + k + ": active width " + k * w + "."),
                        new Variant("coarse-shared", e + " experts top-" + (k - 1) + " + shared",
                                Map.of("top-k", "" + (k - 1), "shared-experts", "1"),
                                "one shared expert of width " + w + " plus top-" + (k - 1) + " of " + e
                                        + ": active width " + k * w + "."),
                        new Variant("fine", g * e + " experts top-" + g * k,
                                Map.of("experts", "" + g * e, "expert-width", "" + fine, "top-k", "" + g * k),
                                g * e + " experts of width " + fine + ", top-" + g * k + ": the same total and "
                                        + "active parameters."),
                        new Variant("fine-shared", g * e + " experts top-" + (g * k - 1) + " + shared",
                                Map.of("experts", "" + g * e, "expert-width", "" + fine, "top-k", "" + (g * k - 1),
                                        "shared-experts", "1"),
                                "one shared expert of width " + fine + " plus top-" + (g * k - 1) + " of " + g * e
                                        + ": active width " + k * w + "."));
            }, false);

    public static final Experiment STABILITY = new Experiment("stability",
            "Router z-loss at a learning rate high enough to diverge",
            "The router z-loss (mean of logsumexp(logits)^2) keeps router logits small and training stable at "
                    + "learning rates where it otherwise diverges, without hurting quality (ST-MoE). Here gradients "
                    + "are clipped at norm 1 as in every run, so a high rate shows as loss spikes and a worse "
                    + "loss rather than as a NaN; a NaN ends a run as diverged.",
            merge(COMMON, Map.of("warmup", "10")), QUICK, b -> {
                var out = new ArrayList<Variant>();
                for (String lr : List.of("0.003", "0.03", "0.3")) {
                    out.add(new Variant("lr" + lr, "lr " + lr, Map.of("lr", lr, "z-loss", "0"),
                            "learning rate " + lr + " (" + Math.round(Double.parseDouble(lr) / 0.003)
                                    + "x the default), no z-loss."));
                    out.add(new Variant("lr" + lr + "-z", "lr " + lr + " + z-loss", Map.of("lr", lr,
                            "z-loss", "0.001"), "learning rate " + lr + ", router z-loss 0.001 (ST-MoE's)."));
                }
                return out;
            }, false);

    public static final Experiment SPECIALISATION = new Experiment("specialisation",
            "Expert specialisation by domain and by token type",
            "Experts specialise by token type (syntax, punctuation, whitespace, code identifiers) more than by domain "
                    + "(Mixtral's analysis); OLMoE finds clearer domain specialisation (e.g. code, arXiv) in a model "
                    + "trained with many fine-grained experts.",
            merge(COMMON, Map.of("data", "data/multidomain", "steps", "300")), QUICK,
            b -> List.of(new Variant("top2", "8 experts top-2", Map.of(),
                    "the default MoE on six domains (about 150 KB of text each).")),
            true);

    public static final List<Experiment> ALL = List.of(MOE_VS_DENSE, ROUTING, BALANCE, CAPACITY, GRANULARITY,
            STABILITY, SPECIALISATION);

    public static Optional<Experiment> named(String name) {
        return ALL.stream().filter(e -> e.name().equals(name)).findFirst();
    }

    public static List<String> names() {
        return ALL.stream().map(Experiment::name).toList();
    }

    private static Map<String, String> ordered(String... keyValues) {
        var m = new LinkedHashMap<String, String>();
        for (int i = 0; i < keyValues.length; i += 2) {
            m.put(keyValues[i], keyValues[i + 1]);
        }
        return m;
    }

    private static Map<String, String> merge(Map<String, String> a, Map<String, String> b) {
        var m = new LinkedHashMap<>(a);
        m.putAll(b);
        return m;
    }
}
