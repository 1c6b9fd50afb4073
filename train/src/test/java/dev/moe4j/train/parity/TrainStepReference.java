package dev.moe4j.train.parity;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.io.safetensors.SafetensorsReader;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One training step of transformers on a fixture model (reference.safetensors, copied from the shared fixtures):
 * the batch, the loss, each parameter's gradient ({@code grad.<name>}) and its value after one AdamW step
 * ({@code after_step.<name>}), under transformers' in-memory names, which this class maps to moe4j's.
 */
final class TrainStepReference {
    final Path folder;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();

    TrainStepReference(String name) {
        this.folder = fixture(name);
        try (var reader = SafetensorsReader.open(folder.resolve("reference.safetensors"))) {
            for (String n : reader.names()) {
                tensors.put(n, reader.tensor(n).copy());
            }
        }
    }

    static Path fixture(String name) {
        try {
            return Path.of(TrainStepReference.class.getClassLoader().getResource("fixtures/" + name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource fixtures/" + name, e);
        }
    }

    Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(folder + ": no reference tensor " + name);
        }
        return t;
    }

    double loss() {
        return tensor("train.loss").getFloat(0);
    }

    /** input_ids [batch, length], flattened batch-major. */
    int[] inputIds() {
        Tensor t = tensor("input_ids");
        int[] ids = new int[(int) t.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) t.getLong(i);
        }
        return ids;
    }

    int sequences() {
        return tensor("input_ids").dim(0);
    }

    /** labels = input_ids shifted inside each sequence; the last position of a sequence predicts nothing. */
    int[] targets() {
        int[] ids = inputIds();
        int length = ids.length / sequences();
        int[] targets = new int[ids.length];
        for (int r = 0; r < ids.length; r++) {
            targets[r] = r % length == length - 1 ? Graph.IGNORE : ids[r + 1];
        }
        return targets;
    }

    /** The transformers in-memory names with a {@code prefix} ("grad." or "after_step."). */
    Map<String, Tensor> withPrefix(String prefix) {
        var out = new LinkedHashMap<String, Tensor>();
        tensors.forEach((n, t) -> {
            if (n.startsWith(prefix)) {
                out.put(n.substring(prefix.length()), t);
            }
        });
        return out;
    }

    private static final Pattern LAYER = Pattern.compile("layers\\.(\\d+)\\.(.*)");

    /**
     * moe4j's parameters under transformers' in-memory names: fused experts as they are, the router as
     * {@code mlp.gate}, and Qwen2-MoE's shared expert split out of its stacked [1, 2I, H] / [1, H, I] tensors.
     */
    static Map<String, Tensor> inTransformersNames(Map<String, ? extends Var> moe4j, java.util.function.Function<Var, Tensor> part) {
        var out = new LinkedHashMap<String, Tensor>();
        moe4j.forEach((name, v) -> {
            Tensor t = part.apply(v);
            switch (name) {
                case "embed_tokens.weight" -> out.put("model.embed_tokens.weight", t);
                case "norm.weight" -> out.put("model.norm.weight", t);
                case "lm_head.weight" -> out.put("lm_head.weight", t);
                default -> {
                    Matcher m = LAYER.matcher(name);
                    if (!m.matches()) {
                        throw new IllegalArgumentException("unexpected parameter " + name);
                    }
                    String p = "model.layers." + m.group(1) + ".", rest = m.group(2);
                    if (rest.equals("input_norm.weight")) {
                        out.put(p + "input_layernorm.weight", t);
                    } else if (rest.equals("post_attention_norm.weight")) {
                        out.put(p + "post_attention_layernorm.weight", t);
                    } else if (rest.startsWith("attention.")) {
                        out.put(p + "self_attn." + rest.substring("attention.".length()), t);
                    } else if (rest.startsWith("mlp.")) {
                        out.put(p + rest, t);
                    } else if (rest.equals("moe.router.weight")) {
                        out.put(p + "mlp.gate.weight", t);
                    } else if (rest.startsWith("moe.experts.")) {
                        out.put(p + "mlp.experts." + rest.substring("moe.experts.".length()), t);
                    } else if (rest.equals("moe.shared_expert_gate.weight")) {
                        out.put(p + "mlp.shared_expert_gate.weight", t);
                    } else if (rest.equals("moe.shared_experts.gate_up_proj")) {
                        Tensor one = t.select(0);
                        int inter = one.dim(0) / 2;
                        out.put(p + "mlp.shared_expert.gate_proj.weight", one.slice(0, inter));
                        out.put(p + "mlp.shared_expert.up_proj.weight", one.slice(inter, 2 * inter));
                    } else if (rest.equals("moe.shared_experts.down_proj")) {
                        out.put(p + "mlp.shared_expert.down_proj.weight", t.select(0));
                    } else {
                        throw new IllegalArgumentException("unexpected parameter " + name);
                    }
                }
            }
        });
        return out;
    }
}
