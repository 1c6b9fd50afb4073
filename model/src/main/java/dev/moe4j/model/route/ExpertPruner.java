package dev.moe4j.model.route;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.ModelWeights;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.gguf.GgufModel;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.model.transformer.WeightSource;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.RoutingPolicy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;

/**
 * Removes the least useful routed experts of every MoE layer from a checkpoint. Each expert is measured on
 * calibration text by its use (the share of tokens routed to it) and its saliency, the mean over the tokens routed
 * to it of gate weight × the L2 norm of its output (REAP's router-weighted expert activation, Lasby et al. 2025); the
 * lowest ranked are removed, with their router rows, and the config says the new number of experts (and a top k no
 * larger). A layer keeps the same number of experts as every other, not the same experts. The pruned model computes
 * what the original computes with the removed experts masked ({@code RoutingPolicy} masks remove an expert from the
 * router exactly so), up to float rounding.
 */
public final class ExpertPruner {
    private ExpertPruner() {
    }

    /** What ranks the experts. */
    public enum Rank {
        /** REAP's saliency: mean over the tokens routed to the expert of gate weight × output norm. */
        SALIENCY,
        /** The share of tokens routed to the expert. */
        USE,
        /** Saliency summed over all calibration tokens (use × saliency): the expert's share of the layer's output. */
        CONTRIBUTION
    }

    /**
     * The measurements of one MoE layer's experts.
     *
     * @param tokens    tokens routed to each expert
     * @param saliency  mean over those tokens of gate weight × output norm (0 for an expert never routed to)
     * @param routed    tokens that went through the layer
     */
    public record LayerScores(int layer, long[] tokens, double[] saliency, long routed) {
        public double use(int expert) {
            return routed == 0 ? 0 : (double) tokens[expert] / routed;
        }

        public double score(int expert, Rank rank) {
            return switch (rank) {
                case SALIENCY -> saliency[expert];
                case USE -> use(expert);
                case CONTRIBUTION -> use(expert) * saliency[expert];
            };
        }
    }

    /** The experts each MoE layer keeps (ascending original indices), and the scores they were chosen by. */
    public record Plan(int keep, Rank rank, Map<Integer, int[]> kept, List<LayerScores> scores) {
        /** The removed experts as a routing policy's mask: the unpruned model with it computes the pruned one. */
        public RoutingPolicy asMask(int experts) {
            var b = RoutingPolicy.builder(RoutingPolicy.Naming.flags());
            boolean any = false;
            for (var e : kept.entrySet()) {
                var removed = new ArrayList<Integer>();
                for (int x = 0; x < experts; x++) {
                    if (Arrays.binarySearch(e.getValue(), x) < 0) {
                        removed.add(x);
                    }
                }
                if (!removed.isEmpty()) {
                    b.mask(e.getKey(), removed);
                    any = true;
                }
            }
            return any ? b.build() : RoutingPolicy.TRAINED;
        }
    }

    /** The experts to keep per layer: {@code keep} of them as a fraction (0 < keep < 1) or a count (an integer). */
    public static int keepCount(String keep, int experts, int groups) {
        double v;
        try {
            v = Double.parseDouble(keep.trim());
        } catch (NumberFormatException e) {
            throw new BadInputException("--keep " + BadInputException.quote(keep) + ": expected a fraction such as 0.75"
                    + " or a number of experts");
        }
        int n;
        if (v > 0 && v < 1) {
            n = (int) Math.round(v * experts);
        } else if (v >= 1 && v == Math.rint(v)) {
            n = (int) v;
        } else {
            throw new BadInputException("--keep " + keep + ": expected a fraction in (0, 1) or a whole number of experts");
        }
        if (n < 1 || n > experts) {
            throw new BadInputException("--keep " + keep + ": keeps " + n + " experts per layer; the model has "
                    + experts + " (keep 1 to " + experts + ")");
        }
        if (n % groups != 0) {
            throw new BadInputException("--keep " + keep + ": " + n + " experts do not split over the model's " + groups
                    + " expert groups (n_group); keep a multiple of " + groups);
        }
        return n;
    }

    /**
     * Measures every MoE layer's experts on {@code ids}, fed in windows of {@code context} tokens as trained (no
     * routing policy).
     */
    public static List<LayerScores> measure(TransformerModel model, int[] ids, int context) {
        MoeConfig moe = requirePrunable(model.config(), model.config().family());
        int e = moe.experts();
        List<Integer> layers = model.transformer().moeLayerIndices();
        var tokens = new HashMap<Integer, long[]>();
        var sums = new HashMap<Integer, double[]>();
        var routed = new HashMap<Integer, long[]>();
        for (int l : layers) {
            tokens.put(l, new long[e]);
            sums.put(l, new double[e]);
            routed.put(l, new long[1]);
        }
        var observer = new ForwardObserver() {
            @Override
            public void onRouterLogits(int layer, Tensor logits) {
                routed.get(layer)[0] += logits.rows();
            }

            @Override
            public void onExpertOutputs(int layer, Dispatch d, Tensor outputs) {
                int[] expert = d.expertOfRows();
                int h = outputs.cols();
                long[] t = tokens.get(layer);
                double[] s = sums.get(layer);
                for (int r = 0; r < d.rows(); r++) {
                    double norm = 0;
                    for (int j = 0; j < h; j++) {
                        double y = outputs.getFloat((long) r * h + j);
                        norm += y * y;
                    }
                    t[expert[r]]++;
                    s[expert[r]] += d.weight()[r] * Math.sqrt(norm);
                }
            }
        };
        for (int start = 0; start < ids.length; start += context) {
            int[] window = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + context));
            InferenceState state = model.newState(window.length);
            try {
                model.forward(state, window, true, observer);
            } finally {
                state.release();
            }
        }
        var out = new ArrayList<LayerScores>();
        for (int l : layers) {
            long[] t = tokens.get(l);
            double[] saliency = new double[e];
            for (int x = 0; x < e; x++) {
                saliency[x] = t[x] == 0 ? 0 : sums.get(l)[x] / t[x];
            }
            out.add(new LayerScores(l, t, saliency, routed.get(l)[0]));
        }
        return out;
    }

    /**
     * Keeps the {@code keep} best experts of each layer by {@code rank} (ties to the lower index); with expert groups
     * (DeepSeek's n_group), the best {@code keep / groups} of each group, so that the groups stay equal.
     */
    public static Plan plan(List<LayerScores> scores, int keep, Rank rank, MoeConfig moe) {
        int e = moe.experts(), groups = moe.groupLimit().groups(), per = e / groups, keepPer = keep / groups;
        var kept = new LinkedHashMap<Integer, int[]>();
        for (LayerScores s : scores) {
            var chosen = new ArrayList<Integer>();
            for (int g = 0; g < groups; g++) {
                int first = g * per;
                IntStream.range(first, first + per).boxed()
                        .sorted(Comparator.comparingDouble((Integer x) -> -s.score(x, rank)).thenComparingInt(x -> x))
                        .limit(keepPer).forEach(chosen::add);
            }
            kept.put(s.layer(), chosen.stream().mapToInt(Integer::intValue).sorted().toArray());
        }
        return new Plan(keep, rank, kept, scores);
    }

    /** The config of the pruned model: {@code keep} experts, a top k no larger, groups of {@code keep / groups}. */
    public static ModelConfig prunedConfig(ModelConfig config, int keep) {
        MoeConfig moe = config.moe().orElseThrow();
        GroupLimit g = moe.groupLimit();
        int perGroup = keep / g.groups();
        int k = Math.min(moe.topK(), g.isLimited() ? g.topGroups() * perGroup : keep);
        var b = moe.toBuilder().experts(keep).topK(k);
        if (g.groups() > 1) {
            b.groupLimit(new GroupLimit(g.groups(), g.topGroups(), Math.min(g.scoredPerGroup(), perGroup)));
        }
        return config.toBuilder().moe(b.build()).build();
    }

    /** The MoE config of a model whose experts can be pruned: token-choice routing. */
    static MoeConfig requirePrunable(ModelConfig config, String what) {
        MoeConfig moe = config.moe().orElseThrow(() -> new BadInputException(what + ": no MoE layers to prune"));
        if (!moe.tokenChoice()) {
            throw new BadInputException(what + ": prune removes token-choice experts; this model routes by "
                    + moe.router().name().toLowerCase(java.util.Locale.ROOT).replace('_', ' '));
        }
        return moe;
    }

    private static final Pattern EXPERT = Pattern.compile("layers\\.(\\d+)\\.moe\\.experts\\.(\\d+)\\.(.+)");
    private static final Pattern STACKED = Pattern.compile("layers\\.(\\d+)\\.moe\\.experts\\.([a-z_]+)");
    private static final Pattern ROUTER = Pattern.compile("layers\\.(\\d+)\\.moe\\.router\\.(weight|bias|selection_bias)");

    /**
     * Writes the pruned checkpoint of the model folder {@code folder} to {@code out}: config.json with the new
     * expert count, the weights in the folder's family layout and dtype (kept experts renumbered in order, router
     * rows gathered), the tokenizer and generation files copied, and {@code pruning.json} (what was kept and why).
     */
    public static void save(Path folder, Plan plan, Path out) {
        if (GgufModel.isGguf(folder)) {
            throw new BadInputException(folder + ": prune writes model folders; GGUF files are not pruned yet (prune"
                    + " the folder it was converted from, then convert --to gguf)");
        }
        try (ModelWeights weights = ModelLoader.weights(folder)) {
            ModelConfig config = weights.config();
            if (config.quantization().isPresent()) {
                throw new BadInputException(folder + ": a pre-quantised checkpoint (" + config.quantization().get()
                        + ") is not pruned yet; prune a float checkpoint");
            }
            ModelConfig pruned = prunedConfig(config, plan.keep());
            Map<String, Tensor> tensors = prunedTensors(weights.tensors(), plan);
            ExpertStorage storage = weights.checkpoint().expertStorage();
            var source = new WeightSource() {
                @Override
                public Var weight(String name, int... shape) {
                    Tensor t = tensors.get(name);
                    if (t == null || !t.hasShape(shape)) {
                        throw new IllegalStateException("pruned weight " + name + ": expected " + Arrays.toString(shape)
                                + ", got " + t);
                    }
                    return Var.constant(t);
                }

                @Override
                public ExpertStorage expertStorage() {
                    return storage;
                }
            };
            Transformer model = new Transformer(pruned, source);
            ModelSaver.save(model, pruned, out, config.dtype(), ModelSaver.DEFAULT_SHARD_BYTES);
        }
        for (String file : List.of(ModelFolder.TOKENIZER, ModelFolder.TOKENIZER_CONFIG, "generation_config.json",
                "chat_template.jinja", "special_tokens_map.json")) {
            Path from = folder.resolve(file);
            if (Files.isRegularFile(from)) {
                try {
                    Files.copy(from, out.resolve(file), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                } catch (IOException e) {
                    throw new BadInputException(out.resolve(file) + ": cannot write (" + e.getMessage() + ")", e);
                }
            }
        }
    }

    /** The tensors by moe4j name with only the kept experts, renumbered, and their router rows. */
    static Map<String, Tensor> prunedTensors(Map<String, Tensor> all, Plan plan) {
        var out = new LinkedHashMap<String, Tensor>();
        for (var entry : all.entrySet()) {
            String name = entry.getKey();
            Tensor t = entry.getValue();
            Matcher m;
            if ((m = EXPERT.matcher(name)).matches()) {
                int[] kept = plan.kept().get(Integer.parseInt(m.group(1)));
                int at = Arrays.binarySearch(kept, Integer.parseInt(m.group(2)));
                if (at >= 0) {
                    out.put("layers." + m.group(1) + ".moe.experts." + at + "." + m.group(3), t);
                }
            } else if ((m = STACKED.matcher(name)).matches() || (m = ROUTER.matcher(name)).matches()) {
                out.put(name, rows(t, plan.kept().get(Integer.parseInt(m.group(1)))));
            } else {
                out.put(name, t);
            }
        }
        return out;
    }

    /** Rows {@code kept} of t along its first dimension, as a new tensor of t's dtype. */
    static Tensor rows(Tensor t, int[] kept) {
        int[] shape = t.shape().clone();
        shape[0] = kept.length;
        Tensor out = Tensor.zeros(t.dtype(), shape);
        for (int i = 0; i < kept.length; i++) {
            out.slice(i, i + 1).copyFrom(t.slice(kept[i], kept[i] + 1));
        }
        return out;
    }
}
