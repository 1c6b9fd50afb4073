package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.model.StoredWeights;
import dev.moe4j.model.family.TensorNames;
import dev.moe4j.model.transformer.ExpertStorage;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tensors of a GGUF file under llama.cpp's names, for {@code ModelLoader}. The experts of a layer are stored
 * stacked ({@code blk.N.ffn_gate_exps.weight} [E, I, H], ...); each expert's matrix is a view of its slice, so
 * nothing is copied and a block-quantised file stays as it is. The same names serve every architecture, as in
 * llama.cpp.
 */
final class GgufWeights implements StoredWeights {
    /** moe4j's names to llama.cpp's; "[{E}]" marks expert E of a stacked tensor. */
    static final TensorNames NAMES = new TensorNames(List.of(
            rule("embed_tokens.weight", "token_embd.weight"),
            rule("norm.weight", "output_norm.weight"),
            rule("lm_head.weight", "output.weight"),
            rule("layers.{N}.input_norm.weight", "blk.{N}.attn_norm.weight"),
            rule("layers.{N}.post_attention_norm.weight", "blk.{N}.ffn_norm.weight"),
            rule("layers.{N}.attention.q_proj.{W}", "blk.{N}.attn_q.{W}"),
            rule("layers.{N}.attention.k_proj.{W}", "blk.{N}.attn_k.{W}"),
            rule("layers.{N}.attention.v_proj.{W}", "blk.{N}.attn_v.{W}"),
            rule("layers.{N}.attention.o_proj.{W}", "blk.{N}.attn_output.{W}"),
            rule("layers.{N}.attention.q_norm.weight", "blk.{N}.attn_q_norm.weight"),
            rule("layers.{N}.attention.k_norm.weight", "blk.{N}.attn_k_norm.weight"),
            rule("layers.{N}.moe.router.weight", "blk.{N}.ffn_gate_inp.weight"),
            rule("layers.{N}.moe.experts.{E}.gate_proj.weight", "blk.{N}.ffn_gate_exps.weight[{E}]"),
            rule("layers.{N}.moe.experts.{E}.up_proj.weight", "blk.{N}.ffn_up_exps.weight[{E}]"),
            rule("layers.{N}.moe.experts.{E}.down_proj.weight", "blk.{N}.ffn_down_exps.weight[{E}]"),
            rule("layers.{N}.moe.shared_expert_gate.weight", "blk.{N}.ffn_gate_inp_shexp.weight"),
            rule("layers.{N}.moe.shared_experts.gate_proj.weight", "blk.{N}.ffn_gate_shexp.weight"),
            rule("layers.{N}.moe.shared_experts.up_proj.weight", "blk.{N}.ffn_up_shexp.weight"),
            rule("layers.{N}.moe.shared_experts.down_proj.weight", "blk.{N}.ffn_down_shexp.weight"),
            rule("layers.{N}.mlp.gate_proj.weight", "blk.{N}.ffn_gate.weight"),
            rule("layers.{N}.mlp.up_proj.weight", "blk.{N}.ffn_up.weight"),
            rule("layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight")),
            ExpertStorage.SEPARATE);
    private static final Pattern EXPERT = Pattern.compile("(.+)\\[(\\d+)]");

    private final GgufReader reader;
    private final int experts;

    GgufWeights(GgufReader reader, int experts) {
        this.reader = reader;
        this.experts = experts;
    }

    private static TensorNames.Rule rule(String moe4j, String gguf) {
        return new TensorNames.Rule(moe4j, gguf);
    }

    @Override
    public String storedName(String name) {
        String stored = NAMES.toCheckpoint(name);
        Matcher m = EXPERT.matcher(stored);
        return m.matches() ? m.group(1) : stored;
    }

    @Override
    public Optional<Stored> find(String name) {
        String stored = NAMES.toCheckpoint(name);
        Matcher m = EXPERT.matcher(stored);
        if (!m.matches()) {
            return reader.info(stored).map(i -> {
                Tensor t = reader.tensor(stored);
                // llama.cpp's shared-expert gate is a vector of the model's width; moe4j's is that one row
                boolean gateVector = name.endsWith("shared_expert_gate.weight") && t.rank() == 1;
                return new Stored(stored, stored, reader.path(), gateVector ? t.reshape(1, t.dim(0)) : t);
            });
        }
        String stacked = m.group(1);
        int expert = Integer.parseInt(m.group(2));
        Optional<GgufTensorInfo> info = reader.info(stacked);
        if (info.isEmpty()) {
            return Optional.empty();
        }
        int[] shape = info.get().shape();
        if (shape.length != 3 || shape[0] != experts) {
            throw new BadInputException(reader.path() + ": tensor '" + stacked + "' has shape "
                    + Arrays.toString(shape) + "; expected [" + experts + ", rows, columns], one matrix for each of"
                    + " the " + experts + " experts its GGUF metadata declares");
        }
        return Optional.of(new Stored(stacked, stacked + "[" + expert + "]", reader.path(),
                reader.tensor(stacked).select(expert)));
    }

    @Override
    public Path location() {
        return reader.path();
    }

    @Override
    public String describedBy() {
        return "GGUF metadata";
    }

    @Override
    public ExpertStorage expertStorage() {
        return NAMES.experts();
    }

    @Override
    public long byteSize() {
        return reader.tensors().stream().mapToLong(GgufTensorInfo::byteSize).sum();
    }

    @Override
    public List<Leftover> leftOver(Set<String> used) {
        return reader.tensors().stream().map(GgufTensorInfo::name).filter(n -> !used.contains(n)).sorted()
                .map(n -> new Leftover(n, reader.path())).toList();
    }

    @Override
    public void close() {
        reader.close();
    }
}
