package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufMetadata;
import dev.moe4j.io.gguf.GgufTensor;
import dev.moe4j.io.gguf.GgufValue;
import dev.moe4j.io.gguf.GgufVocabulary;
import dev.moe4j.io.gguf.GgufWriter;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.ModelWeights;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.moe.MoeConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Converts a Hugging Face model folder that moe4j loads into one GGUF file that llama.cpp runs with the same
 * results: the weights under llama.cpp's tensor names (experts stacked [E, I, H] and [E, H, I], query and key rows
 * reordered where llama.cpp rotates adjacent pairs), the hyperparameters under its keys, and the vocabulary of the
 * folder's tokenizer.json, or a synthetic one of vocab_size tokens for a model without a tokenizer (those of
 * {@code moe4j bench make-model}, run on token ids).
 *
 * <p>Matrices are written as the requested {@link GgufFileType} gives them (quantised on the way for the block
 * types, with llama.cpp's mixture rules for q4_k_m and the like), or each in its stored type; norms and routers
 * always in F32, as llama.cpp's own converter writes them (a lossless widening from BF16/F16). The weights are read
 * through {@link ModelLoader#weights}, so every tensor is checked against config.json first, and streamed from the
 * memory-mapped checkpoint into the file.
 */
public final class GgufConverter {
    private GgufConverter() {
    }

    /**
     * What was written.
     *
     * @param vocabulary where the vocabulary came from, for the user
     */
    public record Result(Path file, String architecture, int tensors, long bytes, GgufFileType fileType,
                         String vocabulary) {
    }

    /**
     * Writes the model of {@code folder} to {@code out} (replacing a file there, atomically).
     *
     * @param fileType the file's type (which gives each matrix its type), or empty to keep each matrix's stored
     *                 type
     */
    public static Result convert(Path folder, Path out, Optional<GgufFileType> fileType) {
        if (Files.isDirectory(out)) {
            throw new BadInputException(out + ": is a folder; give the path of the .gguf file to write");
        }
        try (ModelWeights weights = ModelLoader.weights(folder)) {
            ModelConfig config = weights.config();
            GgufArchitecture arch = GgufArchitecture.of(config, folder.resolve("config.json"));
            Path tokenizerJson = folder.resolve(ModelFolder.TOKENIZER);
            boolean hasTokenizer = Files.isRegularFile(tokenizerJson);
            GgufVocabulary vocabulary = hasTokenizer
                    ? GgufVocabulary.fromTokenizerJson(tokenizerJson, config.vocabSize())
                    : GgufVocabulary.synthetic(config.vocabSize(), specialIds(config));
            List<GgufTensor> tensors = new TensorPlan(weights, arch, fileType).tensors();
            GgufFileType type = fileType.orElseGet(() -> GgufFileType.of(tensors.stream()
                    .filter(t -> t.name().endsWith("ffn_down_exps.weight")).findFirst().orElseThrow().type()));
            GgufWriter.write(out, metadata(folder, config, arch, vocabulary, type), tensors);
            long bytes = tensors.stream().mapToLong(GgufTensor::byteSize).sum();
            String source = hasTokenizer ? ModelFolder.TOKENIZER + " as a " + vocabulary.model() + " vocabulary"
                    : "no tokenizer.json: a synthetic vocabulary of " + config.vocabSize() + " tokens";
            return new Result(out, arch.ggufName(), tensors.size(), bytes, type, source);
        }
    }

    /** The ids config.json declares special, marked as control tokens in a synthetic vocabulary. */
    private static Set<Integer> specialIds(ModelConfig config) {
        var ids = new HashSet<Integer>(config.tokens().eos());
        config.tokens().bos().ifPresent(ids::add);
        config.tokens().pad().ifPresent(ids::add);
        return ids;
    }

    private static GgufMetadata metadata(Path folder, ModelConfig config, GgufArchitecture arch,
                                         GgufVocabulary vocabulary, GgufFileType fileType) {
        var a = (AttentionConfig.Standard) config.attention();
        MoeConfig moe = config.moe().orElseThrow();
        String p = arch.ggufName() + ".";
        var m = GgufMetadata.builder()
                .put("general.architecture", GgufValue.string(arch.ggufName()))
                .put("general.name", GgufValue.string(folder.toAbsolutePath().normalize().getFileName().toString()))
                .put("general.file_type", GgufValue.uint32(fileType.id()))
                .put(p + "vocab_size", GgufValue.uint32(config.vocabSize()))
                .put(p + "context_length", GgufValue.uint32(config.maxPositions()))
                .put(p + "embedding_length", GgufValue.uint32(config.hiddenSize()))
                .put(p + "block_count", GgufValue.uint32(config.numLayers()))
                // llama's experts take their width from feed_forward_length; qwen3moe's from the expert key
                .put(p + "feed_forward_length", GgufValue.uint32(moe.intermediate()))
                .put(p + "attention.head_count", GgufValue.uint32(a.numHeads()))
                .put(p + "attention.head_count_kv", GgufValue.uint32(a.numKvHeads()))
                .put(p + "attention.key_length", GgufValue.uint32(a.headDim()))
                .put(p + "attention.value_length", GgufValue.uint32(a.headDim()))
                .put(p + "attention.layer_norm_rms_epsilon", GgufValue.float32((float) config.norms().eps()))
                .put(p + "rope.dimension_count", GgufValue.uint32(a.headDim()))
                .put(p + "rope.freq_base", GgufValue.float32((float) config.rope().theta()))
                .put(p + "expert_count", GgufValue.uint32(moe.experts()))
                .put(p + "expert_used_count", GgufValue.uint32(moe.topK()));
        if (arch == GgufArchitecture.QWEN3MOE || arch == GgufArchitecture.QWEN2MOE) {
            m.put(p + "expert_feed_forward_length", GgufValue.uint32(moe.intermediate()));
        }
        if (moe.sharedIntermediate() > 0) {
            m.put(p + "expert_shared_feed_forward_length", GgufValue.uint32(moe.sharedIntermediate()));
        }
        if (config.rope().scaling() instanceof RopeConfig.Linear linear) {
            m.put(p + "rope.scaling.type", GgufValue.string("linear"));
            m.put(p + "rope.scaling.factor", GgufValue.float32((float) linear.factor()));
        }
        if (fileType.isQuantized()) {
            m.put(GgufQuantizer.QUANTIZATION_VERSION, GgufValue.uint32(GgufQuantizer.GGML_QUANTIZATION_VERSION));
        }
        vocabulary.addTo(m);
        addedTokens(folder, config, m);
        chatTemplate(folder).ifPresent(t -> m.put("tokenizer.chat_template", GgufValue.string(t)));
        int vocab = config.vocabSize();
        config.tokens().bos().stream().filter(id -> id < vocab)
                .forEach(id -> m.put("tokenizer.ggml.bos_token_id", GgufValue.uint32(id)));
        config.tokens().eos().stream().filter(id -> id < vocab).findFirst()
                .ifPresent(id -> m.put("tokenizer.ggml.eos_token_id", GgufValue.uint32(id)));
        config.tokens().pad().stream().filter(id -> id < vocab)
                .forEach(id -> m.put("tokenizer.ggml.padding_token_id", GgufValue.uint32(id)));
        return m.build();
    }

    /**
     * Whether the tokenizer adds BOS and EOS to a text, said explicitly: llama.cpp's defaults differ by vocabulary
     * (a llama vocabulary adds BOS, a gpt2 one does not), and tokenizer.json's post-processor is what decides.
     */
    private static void addedTokens(Path folder, ModelConfig config, GgufMetadata.Builder m) {
        Path tokenizerJson = folder.resolve(ModelFolder.TOKENIZER);
        int[] added = Files.isRegularFile(tokenizerJson) ? Tokenizer.load(tokenizerJson).encodeIds("", true)
                : new int[0];
        boolean bos = added.length > 0 && config.tokens().bos().isPresent()
                && added[0] == config.tokens().bos().getAsInt();
        boolean eos = added.length > (bos ? 1 : 0) && config.tokens().eos().contains(added[added.length - 1]);
        m.put("tokenizer.ggml.add_bos_token", GgufValue.bool(bos));
        m.put("tokenizer.ggml.add_eos_token", GgufValue.bool(eos));
    }

    /** The default chat template of the folder's tokenizer_config.json (or chat_template.jinja), if it has one. */
    private static Optional<String> chatTemplate(Path folder) {
        Path config = folder.resolve(ModelFolder.TOKENIZER_CONFIG);
        if (!Files.isRegularFile(config)) {
            return Optional.empty();
        }
        try {
            return Optional.of(ChatTemplate.load(config).text());
        } catch (ChatTemplate.Missing e) {
            return Optional.empty();
        }
    }

    /** The GGUF tensors of a model, in llama.cpp's order: embedding, blocks, final norm, LM head. */
    private record TensorPlan(ModelWeights weights, GgufArchitecture arch, Optional<GgufFileType> fileType) {
        List<GgufTensor> tensors() {
            ModelConfig config = weights.config();
            var a = (AttentionConfig.Standard) config.attention();
            int experts = config.moe().orElseThrow().experts();
            var out = new ArrayList<GgufTensor>();
            out.add(matrix("token_embd.weight", "embed_tokens.weight"));
            for (int i = 0; i < config.numLayers(); i++) {
                String blk = "blk." + i + ".";
                String layer = "layers." + i + ".";
                out.add(vector(blk + "attn_norm.weight", layer + "input_norm.weight"));
                out.add(rotated(blk + "attn_q.weight", layer + "attention.q_proj.weight", a.numHeads()));
                out.add(rotated(blk + "attn_k.weight", layer + "attention.k_proj.weight", a.numKvHeads()));
                out.add(matrix(blk + "attn_v.weight", layer + "attention.v_proj.weight"));
                out.add(matrix(blk + "attn_output.weight", layer + "attention.o_proj.weight"));
                if (a.qkvBias()) {
                    for (String x : new String[] {"q", "k", "v"}) {
                        out.add(vector(blk + "attn_" + x + ".bias", layer + "attention." + x + "_proj.bias"));
                    }
                }
                if (config.norms().qkNorm() != QkNorm.NONE) {
                    out.add(vector(blk + "attn_q_norm.weight", layer + "attention.q_norm.weight"));
                    out.add(vector(blk + "attn_k_norm.weight", layer + "attention.k_norm.weight"));
                }
                out.add(vector(blk + "ffn_norm.weight", layer + "post_attention_norm.weight"));
                out.add(vector(blk + "ffn_gate_inp.weight", layer + "moe.router.weight"));
                for (String[] proj : new String[][] {{"gate", "gate_proj"}, {"up", "up_proj"}, {"down", "down_proj"}}) {
                    out.add(stacked(blk + "ffn_" + proj[0] + "_exps.weight", layer + "moe.experts.", proj[1],
                            experts));
                }
                if (config.moe().orElseThrow().sharedIntermediate() > 0) {
                    // llama.cpp's shared gate is one vector of the model's width, moe4j's a [1, H] matrix
                    Tensor gate = weights.get(layer + "moe.shared_expert_gate.weight");
                    out.add(new GgufTensor(blk + "ffn_gate_inp_shexp.weight", GgmlType.F32,
                            new int[] {gate.dim(1)}, List.of(gate)));
                    for (String proj : new String[] {"gate", "up", "down"}) {
                        out.add(matrix(blk + "ffn_" + proj + "_shexp.weight",
                                layer + "moe.shared_experts." + proj + "_proj.weight"));
                    }
                }
            }
            out.add(vector("output_norm.weight", "norm.weight"));
            if (!config.tieEmbeddings()) {
                out.add(matrix("output.weight", "lm_head.weight"));
            }
            return out;
        }

        private GgmlType matrixType(String name, int[] shape, Tensor source) {
            ModelConfig config = weights.config();
            var model = new GgufFileType.Model(config.numLayers(), config.moe().orElseThrow().experts(),
                    config.tieEmbeddings());
            return fileType.map(t -> t.typeOf(name, shape, model))
                    .orElseGet(() -> GgmlType.of(source.dtype()).orElseThrow());
        }

        private GgufTensor matrix(String name, String moe4jName) {
            Tensor w = weights.get(moe4jName);
            return GgufTensor.of(name, matrixType(name, w.shape(), w), w);
        }

        /** Norm weights and routers: F32 whatever the checkpoint's type, as llama.cpp expects them. */
        private GgufTensor vector(String name, String moe4jName) {
            return GgufTensor.of(name, GgmlType.F32, weights.get(moe4jName));
        }

        /** A query or key projection, its rows reordered per head where llama.cpp rotates adjacent pairs. */
        private GgufTensor rotated(String name, String moe4jName, int heads) {
            Tensor w = weights.get(moe4jName);
            GgmlType type = matrixType(name, w.shape(), w);
            if (!arch.interleavedRope()) {
                return GgufTensor.of(name, type, w);
            }
            return new GgufTensor(name, type, w.shape(), halvesToPairs(w, heads));
        }

        /** The experts' matrices of one projection as one [E, rows, cols] tensor. */
        private GgufTensor stacked(String name, String prefix, String projection, int experts) {
            var parts = new ArrayList<Tensor>(experts);
            for (int e = 0; e < experts; e++) {
                parts.add(weights.get(prefix + e + "." + projection + ".weight"));
            }
            Tensor first = parts.getFirst();
            int[] shape = {experts, first.dim(0), first.dim(1)};
            return new GgufTensor(name, matrixType(name, shape, first), shape, parts);
        }
    }

    /**
     * The rows of a [heads × d, in] projection in the order that makes adjacent-pair rotation equal the half
     * rotation: within each head, row {@code j} of the first half and row {@code j} of the second half become rows
     * {@code 2j} and {@code 2j + 1}. Row views of the source; nothing is copied.
     */
    static List<Tensor> halvesToPairs(Tensor w, int heads) {
        int d = w.dim(0) / heads;
        int half = d / 2;
        var rows = new ArrayList<Tensor>(w.dim(0));
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < half; j++) {
                for (int s = 0; s < 2; s++) {
                    int row = h * d + s * half + j;
                    rows.add(w.slice(row, row + 1));
                }
            }
        }
        return rows;
    }
}
