package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.model.StoredWeights;
import dev.moe4j.model.family.TensorNames;
import dev.moe4j.model.transformer.ExpertStorage;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tensors of a GGUF file under llama.cpp's names, for {@code ModelLoader}. The experts of a layer are stored
 * stacked ({@code blk.N.ffn_gate_exps.weight} [E, I, H], their biases [E, I], ...); each expert's matrix or bias is
 * a view of its slice, so nothing is copied and a block-quantised file stays as it is. The same names serve every
 * architecture, as in llama.cpp, but for gpt-oss's pre-FFN norm. The one weight that is computed rather than
 * viewed is DeepSeek's kv_b_proj in files of llama.cpp's current converter, which stores it split and partly
 * transposed for its latent-attention kernels ({@link #kvB}).
 */
final class GgufWeights implements StoredWeights {
    /** moe4j's names to llama.cpp's; "[{E}]" marks expert E of a stacked tensor. */
    private static final TensorNames NAMES = names(false);
    /** gpt-oss: llama.cpp names its pre-FFN norm as transformers does. */
    private static final TensorNames GPT_OSS_NAMES = names(true);
    private static final Pattern EXPERT = Pattern.compile("(.+)\\[(\\d+)]");
    private static final Pattern KV_B = Pattern.compile("blk\\.(\\d+)\\.attn_kv_b\\.weight");

    private final GgufReader reader;
    private final int experts;
    private final TensorNames names;
    /** Tensors read along with another, by that other's name: attn_v_b with attn_k_b. */
    private final Map<String, String> readWith = new ConcurrentHashMap<>();

    GgufWeights(GgufReader reader, int experts) {
        this.reader = reader;
        this.experts = experts;
        boolean gptOss = reader.metadata().get("general.architecture")
                .map(v -> GgufArchitecture.GPT_OSS.ggufName().equals(v.value())).orElse(false);
        this.names = gptOss ? GPT_OSS_NAMES : NAMES;
    }

    /** llama.cpp's names for moe4j's weights in a file of {@code family} (gpt-oss names one norm its own way). */
    static TensorNames namesFor(String family) {
        return family.equals("gpt_oss") ? GPT_OSS_NAMES : NAMES;
    }

    private static TensorNames names(boolean gptOss) {
        return new TensorNames(List.of(
                rule("embed_tokens.weight", "token_embd.weight"),
                rule("norm.weight", "output_norm.weight"),
                rule("lm_head.weight", "output.weight"),
                rule("layers.{N}.input_norm.weight", "blk.{N}.attn_norm.weight"),
                rule("layers.{N}.post_attention_norm.weight",
                        gptOss ? "blk.{N}.post_attention_norm.weight" : "blk.{N}.ffn_norm.weight"),
                rule("layers.{N}.attention.q_proj.{W}", "blk.{N}.attn_q.{W}"),
                rule("layers.{N}.attention.k_proj.{W}", "blk.{N}.attn_k.{W}"),
                rule("layers.{N}.attention.v_proj.{W}", "blk.{N}.attn_v.{W}"),
                rule("layers.{N}.attention.o_proj.{W}", "blk.{N}.attn_output.{W}"),
                rule("layers.{N}.attention.q_norm.weight", "blk.{N}.attn_q_norm.weight"),
                rule("layers.{N}.attention.k_norm.weight", "blk.{N}.attn_k_norm.weight"),
                rule("layers.{N}.attention.sinks", "blk.{N}.attn_sinks.weight"),
                rule("layers.{N}.attention.q_a_proj.weight", "blk.{N}.attn_q_a.weight"),
                rule("layers.{N}.attention.q_a_norm.weight", "blk.{N}.attn_q_a_norm.weight"),
                rule("layers.{N}.attention.q_b_proj.weight", "blk.{N}.attn_q_b.weight"),
                rule("layers.{N}.attention.kv_a_proj.weight", "blk.{N}.attn_kv_a_mqa.weight"),
                rule("layers.{N}.attention.kv_a_norm.weight", "blk.{N}.attn_kv_a_norm.weight"),
                rule("layers.{N}.attention.kv_b_proj.weight", "blk.{N}.attn_kv_b.weight"),
                // before the router's weight and bias, whose {W} would match it
                rule("layers.{N}.moe.router.selection_bias", "blk.{N}.exp_probs_b.bias"),
                rule("layers.{N}.moe.router.{W}", "blk.{N}.ffn_gate_inp.{W}"),
                rule("layers.{N}.moe.experts.{E}.gate_proj.{W}", "blk.{N}.ffn_gate_exps.{W}[{E}]"),
                rule("layers.{N}.moe.experts.{E}.up_proj.{W}", "blk.{N}.ffn_up_exps.{W}[{E}]"),
                rule("layers.{N}.moe.experts.{E}.down_proj.{W}", "blk.{N}.ffn_down_exps.{W}[{E}]"),
                rule("layers.{N}.moe.shared_expert_gate.weight", "blk.{N}.ffn_gate_inp_shexp.weight"),
                rule("layers.{N}.moe.shared_experts.gate_proj.weight", "blk.{N}.ffn_gate_shexp.weight"),
                rule("layers.{N}.moe.shared_experts.up_proj.weight", "blk.{N}.ffn_up_shexp.weight"),
                rule("layers.{N}.moe.shared_experts.down_proj.weight", "blk.{N}.ffn_down_shexp.weight"),
                rule("layers.{N}.mlp.gate_proj.weight", "blk.{N}.ffn_gate.weight"),
                rule("layers.{N}.mlp.up_proj.weight", "blk.{N}.ffn_up.weight"),
                rule("layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight")), ExpertStorage.SEPARATE);
    }

    private static TensorNames.Rule rule(String moe4j, String gguf) {
        return new TensorNames.Rule(moe4j, gguf);
    }

    @Override
    public String storedName(String name) {
        String stored = names.toCheckpoint(name);
        Matcher m = EXPERT.matcher(stored);
        return m.matches() ? m.group(1) : stored;
    }

    @Override
    public Optional<Stored> find(String name) {
        String stored = names.toCheckpoint(name);
        Matcher m = EXPERT.matcher(stored);
        if (!m.matches()) {
            Matcher kvB = KV_B.matcher(stored);
            if (kvB.matches() && reader.info(stored).isEmpty()) {
                return kvB(Integer.parseInt(kvB.group(1)));
            }
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
        // a stacked matrix is [E, rows, columns], a stacked bias [E, rows]
        int rank = stacked.endsWith(".bias") ? 2 : 3;
        if (shape.length != rank || shape[0] != experts) {
            throw new BadInputException(reader.path() + ": tensor '" + stacked + "' has shape "
                    + Arrays.toString(shape) + "; expected [" + experts + (rank == 3 ? ", rows, columns]" : ", rows]")
                    + ", one " + (rank == 3 ? "matrix" : "bias") + " for each of the " + experts
                    + " experts its GGUF metadata declares");
        }
        return Optional.of(new Stored(stacked, stacked + "[" + expert + "]", reader.path(),
                reader.tensor(stacked).select(expert)));
    }

    /**
     * DeepSeek's kv_b_proj [heads × (nope + v), latent] from llama.cpp's split form: per head, attn_k_b
     * [heads, latent, nope] holds the key rows transposed and attn_v_b [heads, v, latent] the value rows as they
     * are. Decoded to F32 (whatever their block type), head by head, into memory off the Java heap (DeepSeek-V3's
     * is 64 MB a layer), as the model multiplies the latent by the whole matrix.
     */
    private Optional<Stored> kvB(int layer) {
        String kName = "blk." + layer + ".attn_k_b.weight", vName = "blk." + layer + ".attn_v_b.weight";
        if (reader.info(kName).isEmpty() || reader.info(vName).isEmpty()) {
            return Optional.empty();
        }
        Tensor k = reader.tensor(kName), v = reader.tensor(vName);
        if (k.rank() != 3 || v.rank() != 3 || k.dim(0) != v.dim(0) || k.dim(1) != v.dim(2)) {
            throw new BadInputException(reader.path() + ": tensors '" + kName + "' " + Arrays.toString(k.shape())
                    + " and '" + vName + "' " + Arrays.toString(v.shape()) + " are not [heads, latent, nope] and"
                    + " [heads, v, latent] of one latent");
        }
        int heads = k.dim(0), latent = k.dim(1), nope = k.dim(2), value = v.dim(1);
        long headBytes = (long) (nope + value) * latent * Float.BYTES;
        MemorySegment data = Arena.ofAuto().allocate(heads * headBytes, 64);
        float[] keyRows = new float[nope * latent];
        for (int h = 0; h < heads; h++) {
            float[] keys = k.select(h).toFloatArray();
            for (int j = 0; j < nope; j++) {
                for (int l = 0; l < latent; l++) {
                    keyRows[j * latent + l] = keys[l * nope + j];
                }
            }
            MemorySegment.copy(keyRows, 0, data, ValueLayout.JAVA_FLOAT, h * headBytes, keyRows.length);
            float[] values = v.select(h).toFloatArray();
            MemorySegment.copy(values, 0, data, ValueLayout.JAVA_FLOAT, h * headBytes + (long) nope * latent
                    * Float.BYTES, values.length);
        }
        readWith.put(kName, vName);
        return Optional.of(new Stored(kName, kName + " and " + vName, reader.path(),
                Tensor.wrap(DType.F32, data, heads * (nope + value), latent)));
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
        var read = new HashSet<>(used);
        used.stream().map(readWith::get).filter(Objects::nonNull).forEach(read::add);
        return reader.tensors().stream().map(GgufTensorInfo::name).filter(n -> !read.contains(n)).sorted()
                .map(n -> new Leftover(n, reader.path())).toList();
    }

    @Override
    public void close() {
        reader.close();
    }
}
