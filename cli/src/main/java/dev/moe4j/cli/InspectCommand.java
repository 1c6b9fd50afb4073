package dev.moe4j.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.TensorEntry;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.family.HfFamily;
import dev.moe4j.model.gguf.GgufModel;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.LossTerm;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Scoring;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code moe4j inspect PATH}: what a model is (architecture, parameter counts) and what its checkpoint holds
 * (files, bytes per dtype, tensors), from a model folder, a config.json, a .safetensors file or an index. Every
 * input is read and validated before anything is printed, so a bad file prints only its one-line error.
 */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Describe a model: its architecture, its total and active parameter counts, and its weights.",
                "PATH is a model folder (config.json and/or safetensors weights), a config.json (no weights needed),"
                        + " a .safetensors file (its tensors only), a model.safetensors.index.json or a .gguf file"
                        + " (its metadata as the config).",
                "Parameter counts include the embeddings and the LM head in both the total and the active count."})
public final class InspectCommand implements Callable<Integer> {
    @Parameters(paramLabel = "PATH", description = "model folder, config.json, .safetensors file, index .json or .gguf file")
    Path path;

    @Option(names = "--tensors", description = "list every tensor with its dtype, shape and file")
    boolean tensors;

    @Option(names = "--json", description = "print one JSON object on one line (for scripts) instead of text")
    boolean json;

    @Spec
    CommandSpec spec;

    /** What was found at PATH. */
    private record Inspection(Path path, Optional<ModelConfig> config, Optional<WeightsSummary> weights) {
    }

    /** The weights of a checkpoint, summarised while its files are open. */
    private record WeightsSummary(List<String> files, Map<DType, Long> bytesByDtype, long totalBytes,
                                  long parameters, List<TensorRow> tensors) {
    }

    private record TensorRow(String name, TensorEntry entry, String file) {
    }

    @Override
    public Integer call() {
        Inspection inspection = inspect(path);
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(Json.compact(toJson(inspection)));
        } else {
            printText(inspection, out);
        }
        out.flush();
        return 0;
    }

    private Inspection inspect(Path path) {
        if (!Files.exists(path)) {
            throw new BadInputException(path + ": no such file or folder");
        }
        String name = path.getFileName() == null ? "" : path.getFileName().toString();
        if (GgufModel.isGguf(path)) {
            return new Inspection(path, Optional.of(GgufModel.config(path)), Optional.of(ggufWeights(path)));
        }
        if (Files.isDirectory(path)) {
            Path configFile = path.resolve("config.json");
            boolean hasConfig = Files.isRegularFile(configFile);
            boolean hasWeights = Checkpoint.isCheckpointFolder(path);
            if (!hasConfig && !hasWeights) {
                throw new BadInputException(path + ": no config.json and no " + Checkpoint.SINGLE_FILE + " or "
                        + Checkpoint.INDEX_FILE + " in this folder");
            }
            var config = hasConfig ? Optional.of(HfFamilies.load(configFile)) : Optional.<ModelConfig>empty();
            return new Inspection(path, config, hasWeights ? Optional.of(weights(path)) : Optional.empty());
        }
        if (name.endsWith(".safetensors")) {
            return new Inspection(path, Optional.empty(), Optional.of(weights(path)));
        }
        if (name.endsWith(".index.json")) {
            Path configFile = path.resolveSibling("config.json");
            var config = Files.isRegularFile(configFile) ? Optional.of(HfFamilies.load(configFile))
                    : Optional.<ModelConfig>empty();
            return new Inspection(path, config, Optional.of(weights(path)));
        }
        if (name.endsWith(".json")) {
            return new Inspection(path, Optional.of(HfFamilies.load(path)), Optional.empty());
        }
        throw new BadInputException(path + ": expected a model folder, a config.json, a .safetensors file, a "
                + Checkpoint.INDEX_FILE + " or a .gguf file");
    }

    /** The tensors of a GGUF file, each as the entry a safetensors header would give it (offsets in the data). */
    private static WeightsSummary ggufWeights(Path path) {
        try (GgufReader gguf = GgufReader.open(path)) {
            var bytes = new EnumMap<DType, Long>(DType.class);
            long total = 0;
            long parameters = 0;
            var rows = new ArrayList<TensorRow>();
            String file = path.getFileName().toString();
            for (GgufTensorInfo t : gguf.tensors()) {
                var entry = new TensorEntry(t.name(), t.type().dtype(), Arrays.stream(t.shape()).boxed().toList(),
                        t.offset(), t.offset() + t.byteSize());
                bytes.merge(entry.dtype(), entry.byteLength(), Long::sum);
                total += entry.byteLength();
                parameters += entry.elementCount();
                rows.add(new TensorRow(t.name(), entry, file));
            }
            return new WeightsSummary(List.of(file), bytes, total, parameters, rows);
        }
    }

    private static WeightsSummary weights(Path path) {
        try (Checkpoint checkpoint = Checkpoint.open(path)) {
            var bytes = new EnumMap<DType, Long>(DType.class);
            long total = 0;
            long parameters = 0;
            var rows = new ArrayList<TensorRow>();
            for (String name : checkpoint.names()) {
                TensorEntry e = checkpoint.entry(name);
                bytes.merge(e.dtype(), e.byteLength(), Long::sum);
                total += e.byteLength();
                parameters += e.elementCount();
                rows.add(new TensorRow(name, e, checkpoint.fileOf(name).path().getFileName().toString()));
            }
            List<String> files = checkpoint.files().stream()
                    .map(SafetensorsReader::path).map(p -> p.getFileName().toString()).toList();
            return new WeightsSummary(files, bytes, total, parameters, rows);
        }
    }

    // ---- text ----

    private void printText(Inspection in, PrintWriter out) {
        out.println(in.path());
        in.config().ifPresent(c -> printConfig(c, in.weights(), out));
        in.weights().ifPresent(w -> printWeights(w, in.config(), out));
        boolean listTensors = tensors || in.config().isEmpty();
        if (listTensors && in.weights().isPresent()) {
            printTensors(in.weights().get(), out);
        }
    }

    private static void row(PrintWriter out, String label, String value) {
        out.printf("%-14s %s%n", label, value);
    }

    private static void printConfig(ModelConfig c, Optional<WeightsSummary> weights, PrintWriter out) {
        row(out, "family", c.family() + HfFamilies.find(c.family()).map(f -> " (" + f.architecture() + ")")
                .orElse(""));
        row(out, "layers", layers(c));
        row(out, "hidden size", Integer.toString(c.hiddenSize()));
        row(out, "attention", attention(c));
        c.moe().ifPresent(m -> {
            row(out, "experts", experts(m));
            row(out, "router", router(m));
        });
        if (c.denseIntermediateSize() > 0 && c.numMoeLayers() < c.numLayers()) {
            List<Integer> dense = c.denseLayerIndices();
            row(out, "dense MLP", "width " + c.denseIntermediateSize() + " (layer" + (dense.size() == 1 ? " " : "s ")
                    + ranges(dense) + ")");
        }
        row(out, "activation", activation(c.activation()));
        row(out, "rope", rope(c.rope()));
        row(out, "norms", "RMSNorm, eps " + Units.number(c.norms().eps()));
        row(out, "vocabulary", c.vocabSize() + " tokens, " + (c.tieEmbeddings() ? "LM head tied to the embeddings"
                : "separate LM head"));
        row(out, "context", c.maxPositions() + " positions");
        row(out, "dtype", c.dtype().name() + c.quantization().map(q -> ", weights quantised as " + q).orElse(""));
        if (c.mtpLayers() > 0) {
            row(out, "MTP", c.mtpLayers() + " multi-token-prediction module(s) beside the model, not counted");
        }

        ParameterCount p = ParameterCount.of(c);
        out.println();
        row(out, "parameters", Units.count(p.total()) + " total, " + Units.count(p.active())
                + " active per token (" + ParameterCount.CONVENTION + ")");
        row(out, "", "active without the input embedding: " + Units.count(p.activeWithoutInputEmbedding()));
        var parts = new ArrayList<String[]>();
        parts.add(new String[] {"embeddings", Units.exact(p.embeddings()), ""});
        parts.add(new String[] {"LM head", Units.exact(p.lmHead()), c.tieEmbeddings() ? "(tied)" : ""});
        parts.add(new String[] {"attention", Units.exact(p.attention()), ""});
        parts.add(new String[] {"norms", Units.exact(p.norms()), ""});
        parts.add(new String[] {"router", Units.exact(p.router()), ""});
        parts.add(new String[] {"routed experts", Units.exact(p.routedExperts()),
                "(" + Units.exact(p.activeRoutedExperts()) + " active)"});
        parts.add(new String[] {"shared experts", Units.exact(p.sharedExperts()), ""});
        parts.add(new String[] {"dense MLPs", Units.exact(p.denseMlps()), ""});
        parts.add(new String[] {"total", Units.exact(p.total()), "(" + Units.exact(p.active()) + " active)"});
        int width = parts.stream().mapToInt(r -> r[1].length()).max().orElse(1);
        for (String[] r : parts) {
            out.println(String.format("  %-16s %" + width + "s %s", r[0], r[1], r[2]).stripTrailing());
        }
    }

    private static void printWeights(WeightsSummary w, Optional<ModelConfig> config, PrintWriter out) {
        out.println();
        row(out, "weights", w.files().size() + (w.files().size() == 1 ? " file, " : " files, ") + w.tensors().size()
                + " tensors, " + Units.exact(w.totalBytes()) + " bytes (" + Units.bytes(w.totalBytes()) + ")");
        for (var e : w.bytesByDtype().entrySet()) {
            row(out, "", String.format("%-12s %s bytes (%s)", e.getKey().name(), Units.exact(e.getValue()),
                    Units.bytes(e.getValue())));
        }
        String elements = Units.exact(w.parameters()) + " elements in the tensors";
        if (config.isPresent()) {
            long counted = ParameterCount.of(config.get()).total();
            elements += counted == w.parameters() ? ", as the config counts"
                    : " (the config counts " + Units.exact(counted) + "; quantised blocks, scales or extra modules"
                    + " make them differ)";
        }
        row(out, "", elements);
    }

    private static void printTensors(WeightsSummary w, PrintWriter out) {
        out.println();
        out.println("tensors");
        int nameWidth = w.tensors().stream().mapToInt(t -> t.name().length()).max().orElse(0);
        int typeWidth = w.tensors().stream().mapToInt(t -> t.entry().describe().length()).max().orElse(0);
        for (TensorRow t : w.tensors()) {
            out.printf("  %-" + nameWidth + "s  %-" + typeWidth + "s  %s%n", t.name(), t.entry().describe(),
                    t.file());
        }
    }

    private static String layers(ModelConfig c) {
        int moe = c.numMoeLayers();
        int dense = c.numLayers() - moe;
        String kinds = dense == 0 ? moe + " MoE" : moe == 0 ? dense + " dense" : dense + " dense, " + moe + " MoE";
        long sliding = c.layers().stream().filter(LayerSpec::isSliding).count();
        if (sliding > 0) {
            int window = c.layers().stream().filter(LayerSpec::isSliding).findFirst().orElseThrow().slidingWindow();
            kinds += sliding == c.numLayers() ? "; sliding window of " + window + " tokens"
                    : "; " + sliding + " with a sliding window of " + window + " tokens, "
                            + (c.numLayers() - sliding) + " with full attention";
        }
        return c.numLayers() + " (" + kinds + ")";
    }

    private static String attention(ModelConfig c) {
        return switch (c.attention()) {
            case AttentionConfig.Standard a -> {
                var s = new StringBuilder(a.kind()).append(": ").append(a.numHeads()).append(" heads, ")
                        .append(a.numKvHeads()).append(" key/value heads, head dim ").append(a.headDim());
                if (c.norms().qkNorm() == QkNorm.PER_HEAD) {
                    s.append("; q/k RMSNorm per head");
                } else if (c.norms().qkNorm() == QkNorm.WHOLE_PROJECTION) {
                    s.append("; q/k RMSNorm over the whole projections");
                }
                if (a.qkvBias() || a.outputBias()) {
                    s.append(a.qkvBias() && a.outputBias() ? "; biases on q, k, v, o"
                            : a.qkvBias() ? "; biases on q, k, v" : "; bias on o");
                }
                a.clipQkv().ifPresent(v -> s.append("; q, k, v clipped to ±").append(Units.number(v)));
                if (a.sinks()) {
                    s.append("; attention sinks");
                }
                yield s.toString();
            }
            case AttentionConfig.Latent a -> "latent (MLA): " + a.numHeads() + " heads, "
                    + (a.qLoraRank() > 0 ? "query rank " + a.qLoraRank() + ", " : "full-rank queries, ")
                    + "key/value rank " + a.kvLoraRank() + ", q/k head dim " + a.qkNopeHeadDim() + " + "
                    + a.qkRopeHeadDim() + " rotary, value head dim " + a.vHeadDim()
                    + (a.bias() ? "; biases" : "");
        };
    }

    private static String experts(MoeConfig m) {
        String s = m.experts() + " routed, top-" + m.topK() + ", width " + m.intermediate();
        if (m.sharedIntermediate() > 0) {
            s += "; shared expert of width " + m.sharedIntermediate()
                    + (m.sharedGate() ? " behind a sigmoid gate" : "");
        } else {
            s += "; no shared experts";
        }
        s += switch (m.ffn()) {
            case ExpertFfn.Gated(GluParams.Clamped c) -> "; clamped SwiGLU (alpha "
                    + Units.number(Double.parseDouble(Float.toString(c.alpha()))) + ", limit "
                    + Units.number(Double.parseDouble(Float.toString(c.limit()))) + ")";
            case ExpertFfn.Gated(GluParams.Gated g) -> "";
            case ExpertFfn.Plain p -> "; plain " + p.activation() + " MLP";
        };
        return s + (m.expertBias() ? "; expert biases" : "");
    }

    private static String router(MoeConfig m) {
        var s = new StringBuilder();
        if (m.router() != RouterKind.TOP_K) {
            s.append(m.router().name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ')).append(" routing, ");
        }
        if (m.gateOrder() == GateOrder.TOP_K_THEN_SOFTMAX) {
            s.append("top-").append(m.topK()).append(" logits, then softmax over them");
        } else {
            s.append(m.scoring() == Scoring.SOFTMAX ? "softmax" : "sigmoid");
            if (m.selectionBias()) {
                s.append(", selection bias");
            }
            if (m.groupLimit().isLimited()) {
                s.append(", best ").append(m.groupLimit().topGroups()).append(" of ")
                        .append(m.groupLimit().groups()).append(" groups");
            }
            s.append(", top-").append(m.topK());
            s.append(m.normalizeTopK() ? ", renormalised" : ", not renormalised");
        }
        if (m.routedScalingFactor() != 1.0) {
            s.append(", scaled by ").append(Units.number(m.routedScalingFactor()));
        }
        if (m.routerBias()) {
            s.append("; router bias");
        }
        if (!m.capacity().isDropless()) {
            s.append("; capacity ").append(m.capacity());
        }
        for (LossTerm term : m.losses()) {
            s.append("; ").append(term.loss().name()).append(" loss coefficient ")
                    .append(Units.number(term.coefficient()));
        }
        return s.toString();
    }

    private static String activation(Activation a) {
        return switch (a) {
            case SILU -> "SwiGLU (SiLU-gated)";
            case GELU -> "GeGLU (GELU-gated)";
            case GELU_TANH -> "GeGLU (tanh-approximated GELU)";
            case RELU -> "ReLU-gated";
        };
    }

    private static String rope(RopeConfig r) {
        String scaling = switch (r.scaling()) {
            case RopeConfig.None n -> "no scaling";
            case RopeConfig.Linear l -> "linear x" + Units.number(l.factor());
            case RopeConfig.Dynamic d -> "dynamic NTK x" + Units.number(d.factor());
            case RopeConfig.Yarn y -> "YaRN x" + Units.number(y.factor())
                    + y.originalMaxPositions().stream().mapToObj(o -> " from " + o + " positions").findFirst()
                    .orElse("");
            case RopeConfig.Llama3 l -> "llama3 x" + Units.number(l.factor()) + " from " + l.originalMaxPositions()
                    + " positions";
            case RopeConfig.LongRope l -> "longrope";
        };
        return "theta " + Units.number(r.theta()) + ", " + scaling + ", "
                + (r.layout() == RopeConfig.Layout.HALF ? "half" : "interleaved") + " layout"
                + (r.partialRotaryFactor() < 1 ? ", " + Units.number(r.partialRotaryFactor()) + " of each head" : "");
    }

    private static String ranges(List<Integer> indices) {
        var parts = new ArrayList<String>();
        for (int i = 0; i < indices.size(); ) {
            int j = i;
            while (j + 1 < indices.size() && indices.get(j + 1) == indices.get(j) + 1) {
                j++;
            }
            parts.add(i == j ? "" + indices.get(i) : indices.get(i) + "-" + indices.get(j));
            i = j + 1;
        }
        return String.join(", ", parts);
    }

    // ---- JSON ----

    private static void attentionJson(ModelConfig c, ObjectNode o) {
        switch (c.attention()) {
            case AttentionConfig.Standard a -> {
                o.put("kind", a.kind());
                o.put("heads", a.numHeads());
                o.put("kv_heads", a.numKvHeads());
                o.put("head_dim", a.headDim());
                o.put("qkv_bias", a.qkvBias());
                o.put("output_bias", a.outputBias());
                a.clipQkv().ifPresent(v -> o.put("clip_qkv", v));
                o.put("sinks", a.sinks());
            }
            case AttentionConfig.Latent a -> {
                o.put("kind", "latent");
                o.put("heads", a.numHeads());
                o.put("q_lora_rank", a.qLoraRank());
                o.put("kv_lora_rank", a.kvLoraRank());
                o.put("qk_nope_head_dim", a.qkNopeHeadDim());
                o.put("qk_rope_head_dim", a.qkRopeHeadDim());
                o.put("v_head_dim", a.vHeadDim());
                o.put("bias", a.bias());
            }
        }
        o.put("qk_norm", c.norms().qkNorm().name().toLowerCase(java.util.Locale.ROOT));
    }

    private static void moeJson(MoeConfig m, ObjectNode o) {
        o.put("experts", m.experts());
        o.put("top_k", m.topK());
        o.put("expert_intermediate_size", m.intermediate());
        o.put("shared_intermediate_size", m.sharedIntermediate());
        o.put("shared_expert_gate", m.sharedGate());
        o.put("expert_bias", m.expertBias());
        ObjectNode router = o.putObject("router");
        router.put("kind", m.router().name().toLowerCase(java.util.Locale.ROOT));
        router.put("scoring", m.scoring().name().toLowerCase(java.util.Locale.ROOT));
        router.put("order", m.gateOrder().name().toLowerCase(java.util.Locale.ROOT));
        router.put("renormalize", m.normalizeTopK());
        router.put("selection_bias", m.selectionBias());
        router.put("groups", m.groupLimit().groups());
        router.put("top_k_groups", m.groupLimit().topGroups());
        router.put("routed_scaling_factor", m.routedScalingFactor());
        router.put("bias", m.routerBias());
        router.put("noise", m.noise().kind().name().toLowerCase(java.util.Locale.ROOT));
        router.put("noise_amount", m.noise().amount());
        ObjectNode losses = o.putObject("losses");
        m.losses().forEach(t -> losses.put(t.loss().name(), t.coefficient()));
    }

    private ObjectNode toJson(Inspection in) {
        ObjectNode root = Json.mapper().createObjectNode();
        root.put("path", in.path().toString());
        in.config().ifPresent(c -> {
            ObjectNode cfg = root.putObject("config");
            cfg.put("family", c.family());
            HfFamilies.find(c.family()).map(HfFamily::architecture).ifPresent(a -> cfg.put("architecture", a));
            cfg.put("layers", c.numLayers());
            cfg.put("moe_layers", c.numMoeLayers());
            c.denseLayerIndices().forEach(cfg.putArray("dense_layers")::add);
            var windows = cfg.putArray("sliding_windows");
            c.layers().forEach(l -> windows.add(l.slidingWindow()));
            cfg.put("hidden_size", c.hiddenSize());
            cfg.put("vocab_size", c.vocabSize());
            cfg.put("tie_embeddings", c.tieEmbeddings());
            cfg.put("max_positions", c.maxPositions());
            cfg.put("dtype", c.dtype().name());
            c.quantization().ifPresent(q -> cfg.put("quantization", q));
            cfg.put("mtp_layers", c.mtpLayers());
            attentionJson(c, cfg.putObject("attention"));
            c.moe().ifPresent(m -> moeJson(m, cfg.putObject("moe")));
            if (c.denseIntermediateSize() > 0) {
                cfg.put("dense_intermediate_size", c.denseIntermediateSize());
            }
            cfg.put("activation", activation(c.activation()));
            cfg.put("rope", rope(c.rope()));

            ParameterCount p = ParameterCount.of(c);
            ObjectNode params = root.putObject("parameters");
            params.put("total", p.total());
            params.put("active", p.active());
            params.put("active_without_input_embedding", p.activeWithoutInputEmbedding());
            params.put("convention", ParameterCount.CONVENTION);
            params.put("embeddings", p.embeddings());
            params.put("lm_head", p.lmHead());
            params.put("attention", p.attention());
            params.put("norms", p.norms());
            params.put("router", p.router());
            params.put("routed_experts", p.routedExperts());
            params.put("active_routed_experts", p.activeRoutedExperts());
            params.put("shared_experts", p.sharedExperts());
            params.put("dense_mlps", p.denseMlps());
        });
        in.weights().ifPresent(w -> {
            ObjectNode weights = root.putObject("weights");
            w.files().forEach(weights.putArray("files")::add);
            weights.put("total_bytes", w.totalBytes());
            ObjectNode byDtype = weights.putObject("bytes_by_dtype");
            w.bytesByDtype().forEach((d, b) -> byDtype.put(d.name(), b));
            weights.put("tensor_elements", w.parameters());
            weights.put("tensor_count", w.tensors().size());
            if (tensors || in.config().isEmpty()) {
                var list = weights.putArray("tensors");
                for (TensorRow t : w.tensors()) {
                    ObjectNode o = list.addObject();
                    o.put("name", t.name());
                    o.put("dtype", t.entry().dtype().name());
                    t.entry().shape().forEach(o.putArray("shape")::add);
                    o.put("bytes", t.entry().byteLength());
                    o.put("file", t.file());
                }
            }
        });
        return root;
    }
}
