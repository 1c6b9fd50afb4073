package dev.moe4j.train.config;

import dev.moe4j.core.BadInputException;
import dev.moe4j.train.config.Setting.Group;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every option of {@code moe4j train}, in the order {@code --help} lists them. The command line, config files
 * (JSON or YAML, the same keys) and the saved configuration of a run all go through this one list, so a key that is
 * not here is an error wherever it appears.
 *
 * <p>Values are resolved in layers: defaults, then the {@code --tiny} preset, then a config file, then flags.
 */
public final class TrainSettings {
    private TrainSettings() {
    }

    private static Setting s(Group g, String key, String value, String label, String description) {
        return new Setting(key, g, value, label, description);
    }

    private static Setting on(Group g, String key, boolean value, String description) {
        return new Setting(key, g, Boolean.toString(value), "", description);
    }

    public static final List<Setting> ALL = List.of(
            // ---- model ----
            s(Group.MODEL, "init", "", "DIR", "Fine-tune a Hugging Face checkpoint (its config.json, weights and "
                    + "tokenizer.json) of a supported family; the model's own options are then taken from it and the "
                    + "result is saved in the same family's format."),
            s(Group.MODEL, "layers", "4", "N", "Decoder layers."),
            s(Group.MODEL, "hidden", "128", "N", "Model width (d_model)."),
            s(Group.MODEL, "heads", "4", "N", "Attention heads."),
            s(Group.MODEL, "kv-heads", "0", "N", "Key/value heads (grouped-query attention); 0: as many as --heads."),
            s(Group.MODEL, "head-dim", "0", "N", "Width of each head; 0: hidden / heads."),
            s(Group.MODEL, "experts", "8", "N", "Routed experts per MoE layer; 0 trains the dense baseline with the "
                    + "same active FLOPs (a dense MLP of width top-k x expert width, plus the shared experts)."),
            s(Group.MODEL, "top-k", "2", "K", "Experts per token (token-choice routers)."),
            s(Group.MODEL, "expert-width", "256", "N", "Hidden width of each routed expert (before --granularity)."),
            s(Group.MODEL, "granularity", "1", "G", "Fine-grained experts: G x experts of width expert-width / G, "
                    + "top-k x G per token (same parameters and active FLOPs)."),
            s(Group.MODEL, "shared-experts", "0", "N", "Always-on shared experts, each of the (fine-grained) expert "
                    + "width, run as one MLP beside the routed ones."),
            on(Group.MODEL, "shared-gate", false, "Scale the shared experts' output by sigmoid(x . w) (Qwen2-MoE)."),
            s(Group.MODEL, "moe-every", "1", "K", "Every K-th layer is a mixture of experts (layer i when (i + 1) "
                    + "% K == 0), the others dense MLPs of the same active width."),
            s(Group.MODEL, "expert-ffn", "swiglu", "KIND", "The experts' network: swiglu, geglu, relu or gelu."),
            s(Group.MODEL, "vocab", "2048", "N", "Vocabulary of the byte-level BPE trained on the data (when no "
                    + "--tokenizer is given)."),
            s(Group.MODEL, "rope-theta", "10000", "X", "RoPE base frequency."),
            on(Group.MODEL, "tie-embeddings", false, "The LM head reuses the token embedding matrix."),
            on(Group.MODEL, "qkv-bias", false, "Biases on the query, key and value projections."),
            s(Group.MODEL, "qk-norm", "none", "KIND", "RMSNorm of queries and keys: none, per-head (Qwen3) or whole "
                    + "(OLMoE)."),
            s(Group.MODEL, "norm-eps", "1e-6", "X", "Epsilon of every RMSNorm."),
            s(Group.MODEL, "init-std", "0.02", "X", "Standard deviation of the initial weights (initializer_range)."),
            // ---- routing ----
            s(Group.ROUTING, "router", "topk", "KIND", "topk (token choice), dense (every expert, k = experts), "
                    + "expert-choice (each expert takes its top-C tokens) or soft (Soft MoE slots)."),
            s(Group.ROUTING, "scoring", "softmax", "KIND", "Router scores: softmax or sigmoid."),
            s(Group.ROUTING, "gate-order", "softmax-then-topk", "KIND", "softmax-then-topk, or topk-then-softmax "
                    + "(softmax over the kept logits only)."),
            on(Group.ROUTING, "normalize-topk", true, "Renormalise the kept scores to sum 1 (Mixtral); off: keep "
                    + "them as scored (Qwen2-MoE, OLMoE)."),
            s(Group.ROUTING, "routed-scaling", "1", "X", "Multiply the gate weights by X (DeepSeek-V3's "
                    + "routed_scaling_factor)."),
            on(Group.ROUTING, "router-bias", false, "A bias on the router linear."),
            s(Group.ROUTING, "groups", "1", "N", "Group-limited routing: split the experts into N groups..."),
            s(Group.ROUTING, "top-groups", "1", "N", "...and let a token choose only within its N best groups."),
            s(Group.ROUTING, "noise", "none", "KIND", "Router noise while training: none, jitter (input times "
                    + "U[1-a, 1+a]), gaussian (logits + N(0, a^2)) or learned (noisy top-k, Shazeer et al.)."),
            s(Group.ROUTING, "noise-amount", "0.01", "A", "The jitter range or Gaussian standard deviation."),
            s(Group.ROUTING, "capacity-factor", "0", "X", "Tokens per expert = X . tokens . k / experts; 0: "
                    + "dropless."),
            s(Group.ROUTING, "capacity-rounding", "ceil", "KIND", "How the capacity rounds: floor (Switch), ceil "
                    + "(V-MoE) or round."),
            s(Group.ROUTING, "capacity-multiple", "1", "N", "Round the capacity up to a multiple of N."),
            s(Group.ROUTING, "overflow", "drop", "KIND", "A choice that finds its expert full: drop (the residual "
                    + "carries the token) or next-choice (re-route to the next best expert with room)."),
            s(Group.ROUTING, "priority", "position", "KIND", "Which tokens claim slots first: position or score "
                    + "(batch priority routing)."),
            s(Group.ROUTING, "expert-choice-decode", "threshold", "KIND", "Expert choice at inference: threshold "
                    + "(running per-expert score thresholds, causal), predictor (a small MLP beside the router, trained "
                    + "on the batch's selections, says which experts take each token: causal, as Mixture-of-Depths) "
                    + "or batch (top-C of the batch)."),
            s(Group.ROUTING, "predictor-width", "64", "N", "Expert-choice predictor: hidden width of its MLP (router "
                    + "input -> N -> experts); 0: a linear probe."),
            on(Group.ROUTING, "predictor-stop-gradient", true, "Expert-choice predictor: its loss trains the "
                    + "predictor only (Mixture-of-Depths); off: its gradient also flows into the network."),
            s(Group.ROUTING, "predictor-top-k", "0", "K", "Expert-choice predictor at inference: each token goes to "
                    + "its K experts of highest predicted probability; 0: to every expert predicted at 0.5 or more."),
            s(Group.ROUTING, "predictor-loss", "0.01", "X", "Expert-choice predictor: weight of its binary "
                    + "cross-entropy in the training loss."),
            s(Group.ROUTING, "threshold-momentum", "0.05", "X", "Expert choice: weight of the newest batch in the "
                    + "running thresholds."),
            s(Group.ROUTING, "slots-per-expert", "1", "N", "Soft MoE: slots per expert."),
            on(Group.ROUTING, "soft-normalize", true, "Soft MoE: L2-normalise tokens and slots and learn a scale."),
            // ---- balance ----
            s(Group.BALANCE, "balance-loss", "auto", "KIND", "switch (transformers' form, sum f = k), "
                    + "switch-paper (sum f = 1), importance, load (needs gaussian or learned noise), importance+load (both, "
                    + "each with the coefficient: Shazeer et al.'s pair), sequence "
                    + "(DeepSeek-V3), none, or auto: switch for token-choice routers, none for expert choice and "
                    + "Soft MoE (balanced by construction)."),
            s(Group.BALANCE, "balance-coef", "0.01", "X", "Coefficient of the balance loss."),
            s(Group.BALANCE, "importance-of", "auto", "KIND", "What the importance loss sums per expert: "
                    + "clean-softmax (V-MoE: the softmax of the logits before noise), noisy-softmax (of the noisy "
                    + "logits), top-k-gates (Shazeer et al.: each token's gate weights on its kept experts), or auto: "
                    + "top-k-gates with --gate-order topk-then-softmax (Shazeer et al.'s gating), else clean-softmax."),
            s(Group.BALANCE, "load-threshold", "auto", "KIND", "The load loss's threshold: kth-excluding-self "
                    + "(Shazeer et al.: the k-th largest noisy logit of the other experts), kth-noisy (V-MoE: the "
                    + "token's k-th largest noisy logit), or auto: kth-excluding-self with --gate-order "
                    + "topk-then-softmax, else kth-noisy."),
            s(Group.BALANCE, "z-loss", "0", "X", "Coefficient of the router z-loss (0: off)."),
            s(Group.BALANCE, "bias-balancing", "0", "X", "Auxiliary-loss-free balancing (DeepSeek-V3): a selection "
                    + "bias moved by X per step toward balance (0: off; try 0.001)."),
            // ---- LoRA ----
            s(Group.LORA, "lora-rank", "0", "R", "Train LoRA adapters of rank R beside the --init checkpoint's "
                    + "frozen weights instead of all its weights (0: full fine-tuning). Saved in PEFT's format "
                    + "(adapter_config.json, adapter_model.safetensors)."),
            s(Group.LORA, "lora-alpha", "16", "A", "LoRA's alpha: the adapters' update is scaled by A / R (PEFT's "
                    + "lora_alpha)."),
            s(Group.LORA, "lora-targets", "q_proj,k_proj,v_proj,o_proj", "LIST", "Where adapters go: attention "
                    + "projections by name (q_proj, k_proj, v_proj, o_proj; DeepSeek's q_a_proj, q_b_proj, "
                    + "kv_a_proj_with_mqa, kv_b_proj), experts (one adapter per expert on the fused gate_up_proj and "
                    + "on down_proj), shared_experts (their gate_proj, up_proj, down_proj) and router."),
            on(Group.LORA, "lora-rslora", false, "Rank-stabilised LoRA: scale by A / sqrt(R)."),
            on(Group.LORA, "mmap", false, "Leave the frozen base weights in the memory-mapped checkpoint files "
                    + "instead of copying them into memory (with --lora-rank)."),
            // ---- optimiser ----
            s(Group.OPTIMISER, "lr", "3e-3", "LR", "Peak learning rate of AdamW."),
            s(Group.OPTIMISER, "schedule", "cosine", "KIND", "cosine (linear warmup, cosine decay to "
                    + "min-lr-ratio x lr) or constant (after warmup)."),
            s(Group.OPTIMISER, "warmup", "30", "N", "Warmup steps."),
            s(Group.OPTIMISER, "min-lr-ratio", "0.1", "X", "The cosine decay ends at X x lr."),
            s(Group.OPTIMISER, "weight-decay", "0.1", "X", "Decoupled weight decay."),
            on(Group.OPTIMISER, "decay-all", false, "Decay every parameter, as torch.optim.AdamW(model.parameters()) "
                    + "does; off: spare norms and biases, as Hugging Face's Trainer does."),
            s(Group.OPTIMISER, "beta1", "0.9", "X", "AdamW beta1."),
            s(Group.OPTIMISER, "beta2", "0.95", "X", "AdamW beta2."),
            s(Group.OPTIMISER, "eps", "1e-8", "X", "AdamW epsilon."),
            s(Group.OPTIMISER, "clip", "1", "X", "Clip gradients to a global norm of X (0: off)."),
            s(Group.OPTIMISER, "batch", "16", "N", "Sequences per micro-batch."),
            s(Group.OPTIMISER, "accumulate", "1", "N", "Micro-batches per optimiser step (gradient accumulation)."),
            // ---- data ----
            s(Group.DATA, "data", "data/shakespeare", "PATHS", "Training text: files or folders, comma-separated "
                    + "(X.valid.txt beside X.txt is its validation split); or one .jsonl: of JSON arrays of token ids "
                    + "(packed like text), or of examples, one JSON object a line, each its own sequence: "
                    + "{\"messages\": [...]} (chat template, loss on the assistant's turns), {\"prompt\", "
                    + "\"completion\"} (loss on the completion), {\"text\"}, or {\"input_ids\", \"labels\"} (-100: no "
                    + "loss)."),
            s(Group.DATA, "chat-template", "", "FILE", "Jinja chat template of messages examples, saved with the model; "
                    + "default: the --init model's (tokenizer_config.json), or for a new model moe4j's plain "
                    + "'Role:' template."),
            s(Group.DATA, "max-length", "0", "N", "Examples longer than N tokens are cut to N (a warning counts "
                    + "them); 0: the model's context length."),
            on(Group.DATA, "packing", false, "Lay examples end to end and cut --context windows from them, as text is "
                    + "(their loss masks kept); off: one example a sequence, batches padded to their longest."),
            s(Group.DATA, "context", "128", "N", "Tokens per training sequence (of text, and of --packing windows)."),
            s(Group.DATA, "valid-fraction", "0.1", "X", "Validation share of a file without a .valid.txt (its "
                    + "tail), or of the lines of a .jsonl."),
            s(Group.DATA, "tokenizer", "", "FILE", "A tokenizer.json to use; default: train a byte-level BPE of "
                    + "--vocab tokens on the training text (cached)."),
            on(Group.DATA, "shuffle", true, "Random windows (seeded), or the examples in a new order each epoch; off: "
                    + "in order."),
            s(Group.DATA, "cache", "", "DIR", "Where tokenised data and trained tokenizers are cached; default "
                    + "$MOE4J_CACHE or ~/.cache/moe4j."),
            // ---- run ----
            s(Group.RUN, "steps", "600", "N", "Optimiser steps (0 with --time: as many as the time allows)."),
            s(Group.RUN, "time", "", "DURATION", "Stop after this long (e.g. 90s, 5m, 1h), checkpoint included."),
            s(Group.RUN, "eval-every", "100", "N", "Evaluate on the validation split every N steps (0: only at the "
                    + "end)."),
            s(Group.RUN, "eval-batches", "16", "N", "Validation batches per evaluation."),
            s(Group.RUN, "save-every", "0", "N", "Checkpoint every N steps (0: at each evaluation and at the end)."),
            s(Group.RUN, "seed", "1", "N", "Seeds the weights, the batches and the router noise."),
            s(Group.RUN, "threads", "0", "N", "Worker threads (0: all processors)."),
            s(Group.RUN, "device", "auto", "DEVICE", "cpu, cuda, or auto: cuda when an NVIDIA GPU and its driver are "
                    + "found and the MoE layers' options run there, else cpu."),
            s(Group.RUN, "name", "", "NAME", "Run name; default: shakespeare-moe, or the data's name."),
            s(Group.RUN, "out", "", "DIR", "Where the run is saved; default runs/NAME."),
            on(Group.RUN, "resume", false, "Continue the run saved in --out from its last checkpoint, exactly as if "
                    + "it had not stopped."),
            s(Group.RUN, "family", "auto", "KIND", "Checkpoint format: auto (the first of mixtral, qwen2_moe, "
                    + "qwen3_moe, olmoe that can express the model, else moe4j), or one of them."),
            s(Group.RUN, "dtype", "f32", "KIND", "Weights on disk: f32 or bf16."),
            s(Group.RUN, "samples", "2", "N", "Text samples printed at the end."),
            s(Group.RUN, "sample-tokens", "100", "N", "Tokens per sample."),
            s(Group.RUN, "prompt", "", "TEXT", "Prompt of the samples; default: the start of a validation line."),
            s(Group.RUN, "temperature", "0.8", "X", "Sampling temperature of the samples."),
            s(Group.RUN, "log-every", "10", "N", "When the output is not a terminal, a progress line every N steps."),
            on(Group.RUN, "tiny", false, "A seconds-long smoke run: a tiny model, 5 steps (options given explicitly "
                    + "still apply)."));

    /** What --tiny changes, under whatever a file or a flag sets. */
    public static final Map<String, String> TINY = Map.ofEntries(
            Map.entry("layers", "2"), Map.entry("hidden", "32"), Map.entry("heads", "2"),
            Map.entry("experts", "4"), Map.entry("expert-width", "32"), Map.entry("vocab", "320"),
            Map.entry("context", "32"), Map.entry("batch", "4"), Map.entry("steps", "5"), Map.entry("warmup", "1"),
            Map.entry("eval-every", "0"), Map.entry("eval-batches", "2"), Map.entry("samples", "1"),
            Map.entry("sample-tokens", "16"));

    private static final Map<String, Setting> BY_KEY;

    static {
        var m = new LinkedHashMap<String, Setting>();
        for (Setting s : ALL) {
            if (m.put(s.key(), s) != null) {
                throw new IllegalStateException("duplicate setting " + s.key());
            }
        }
        BY_KEY = m;
    }

    public static Optional<Setting> find(String key) {
        return Optional.ofNullable(BY_KEY.get(key));
    }

    public static Setting get(String key) {
        return find(key).orElseThrow(() -> new IllegalArgumentException("no setting " + key));
    }

    /**
     * Every key with its value: defaults, then {@link #TINY} when {@code tiny} is on in {@code file} or
     * {@code flags}, then {@code file}, then {@code flags}. Unknown keys are the caller's mistake.
     */
    public static Map<String, String> resolve(Map<String, String> file, Map<String, String> flags) {
        requireKnown(file, "config file");
        requireKnown(flags, "flags");
        var out = new LinkedHashMap<String, String>();
        ALL.forEach(s -> out.put(s.key(), s.defaultValue()));
        String tiny = flags.getOrDefault("tiny", file.getOrDefault("tiny", "false"));
        if (new Values(Map.of("tiny", tiny)).flag("tiny")) {
            out.putAll(TINY);
        }
        out.putAll(file);
        out.putAll(flags);
        return out;
    }

    /**
     * Options a resumed run may change: how much longer it goes, what it reports and where it is; not what it
     * computes (a changed learning rate would not continue the same run).
     */
    public static final java.util.Set<String> CHANGEABLE_ON_RESUME = java.util.Set.of("steps", "time", "eval-every",
            "eval-batches", "save-every", "samples", "sample-tokens", "prompt", "temperature", "log-every", "threads", "device", "mmap",
            "resume", "out", "name", "cache");

    /**
     * The options of a resumed run: those saved with it, with {@code given} (file and flags together) allowed to
     * change only {@link #CHANGEABLE_ON_RESUME}; any other given value must equal the saved one.
     */
    public static Map<String, String> resumed(Map<String, String> saved, Map<String, String> given, String where) {
        requireKnown(saved, where);
        var out = new LinkedHashMap<String, String>();
        ALL.forEach(s -> out.put(s.key(), saved.getOrDefault(s.key(), s.defaultValue())));
        for (var e : given.entrySet()) {
            String key = e.getKey();
            if (CHANGEABLE_ON_RESUME.contains(key)) {
                out.put(key, e.getValue());
            } else if (!out.get(key).equals(e.getValue())) {
                throw new BadInputException("--resume continues the run with its saved options, but --" + key + " "
                        + e.getValue() + " differs from the saved " + (out.get(key).isEmpty() ? "(none)" : out.get(key))
                        + " (" + where + ")");
            }
        }
        out.put("resume", "true");
        return out;
    }

    private static void requireKnown(Map<String, String> values, String where) {
        for (String key : values.keySet()) {
            if (!BY_KEY.containsKey(key)) {
                throw new BadInputException(where + ": unknown option " + BadInputException.quote(key)
                        + " (moe4j train --help lists them)");
            }
        }
    }
}
