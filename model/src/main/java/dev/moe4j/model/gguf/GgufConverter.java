package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufMetadata;
import dev.moe4j.io.gguf.GgufPart;
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
import dev.moe4j.model.transformer.RandomWeights;
import dev.moe4j.moe.MoeConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
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
 *
 * <p>{@link #writeRandom} writes a model that exists nowhere else, {@link RandomWeights} computed chunk by chunk as
 * the writer reaches them, through the same tensor plan and metadata: this class is the one place that knows
 * llama.cpp's tensor names and keys.
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
     * Where the plan's weights come from, by moe4j's names (listed in {@code WeightSource}): a checkpoint's tensors
     * or values computed as they are written.
     */
    private interface Source {
        /** Rows {@code [from, to)} (along the first dimension) of the weight {@code name} of {@code shape}. */
        GgufPart rows(String name, int[] shape, int from, int to);

        /** The type a matrix keeps when no file type is given. */
        GgmlType storedType(String name);
    }

    /**
     * Writes the model of {@code folder} to {@code out} (replacing a file there, atomically).
     *
     * @param fileType the file's type (which gives each matrix its type), or empty to keep each matrix's stored
     *                 type
     */
    public static Result convert(Path folder, Path out, Optional<GgufFileType> fileType) {
        checkTarget(out);
        try (ModelWeights weights = ModelLoader.weights(folder)) {
            ModelConfig config = weights.config();
            GgufArchitecture arch = GgufArchitecture.of(config, folder.resolve("config.json").toString());
            Path tokenizerJson = folder.resolve(ModelFolder.TOKENIZER);
            boolean hasTokenizer = Files.isRegularFile(tokenizerJson);
            GgufVocabulary vocabulary = hasTokenizer
                    ? GgufVocabulary.fromTokenizerJson(tokenizerJson, config.vocabSize())
                    : GgufVocabulary.synthetic(config.vocabSize(), specialIds(config));
            Source source = new Source() {
                @Override
                public GgufPart rows(String name, int[] shape, int from, int to) {
                    Tensor t = weights.get(name);
                    if (!Arrays.equals(t.shape(), shape)) {
                        throw new IllegalStateException(name + ": the plan expects " + Arrays.toString(shape)
                                + ", the checked checkpoint holds " + t);
                    }
                    return new GgufPart.Stored(from == 0 && to == shape[0] ? t : t.slice(from, to));
                }

                @Override
                public GgmlType storedType(String name) {
                    return GgmlType.of(weights.get(name).dtype()).orElseThrow();
                }
            };
            String name = folder.toAbsolutePath().normalize().getFileName().toString();
            String vocabularySource = hasTokenizer ? ModelFolder.TOKENIZER + " as a " + vocabulary.model()
                    + " vocabulary" : "no tokenizer.json: a synthetic vocabulary of " + config.vocabSize() + " tokens";
            return write(out, name, Optional.of(folder), config, arch, vocabulary, source, fileType, vocabularySource);
        }
    }

    /**
     * Writes a model of {@code config} with {@link RandomWeights} of {@code seed} to {@code out} (replacing a file
     * there, atomically), each tensor computed as the writer reaches it, so memory stays bounded whatever the size;
     * the same values as {@link #convert} gives for an F32 folder of the same random weights.
     *
     * @param configSource where the config came from, for messages
     */
    public static Result writeRandom(ModelConfig config, String configSource, long seed, Path out,
                                     GgufFileType fileType) {
        checkTarget(out);
        GgufArchitecture arch = GgufArchitecture.of(config, configSource);
        var random = new RandomWeights(config, seed);
        Source source = new Source() {
            @Override
            public GgufPart rows(String name, int[] shape, int from, int to) {
                long row = Tensor.elementCount(shape) / shape[0];
                return new GgufPart.Computed(tiled(random.values(name, shape)), from * row, (to - from) * row);
            }

            @Override
            public GgmlType storedType(String name) {
                return GgmlType.F32;
            }
        };
        String name = out.getFileName().toString().replaceFirst("(?i)\\.gguf$", "");
        return write(out, name, Optional.empty(), config, arch,
                GgufVocabulary.synthetic(config.vocabSize(), specialIds(config)),
                source, Optional.of(fileType), "a synthetic vocabulary of " + config.vocabSize() + " tokens");
    }

    /** Random weights' values as tiles, which the writer quantises once each. */
    private static GgufPart.Tiled tiled(RandomWeights.Values values) {
        if (RandomWeights.Values.TILE != GgufPart.Tiled.TILE) {
            throw new IllegalStateException("random weights' tiles are not the writer's");
        }
        return new GgufPart.Tiled() {
            @Override
            public void fill(long index, float[] dst, int n) {
                values.fill(index, dst, n);
            }

            @Override
            public int tiles() {
                return values.constant() ? 1 : RandomWeights.Values.TILES;
            }

            @Override
            public int tileAt(long index) {
                return values.tileAt(index);
            }

            @Override
            public void fillTile(int tile, float[] dst) {
                values.fillTile(tile, dst);
            }

            @Override
            public Object tileSet() {
                // the tiles are fixed; only the scale (and constancy) tells two weights' tiles apart
                return List.of(values.scale(), values.constant());
            }
        };
    }

    private static void checkTarget(Path out) {
        if (Files.isDirectory(out)) {
            throw new BadInputException(out + ": is a folder; give the path of the .gguf file to write");
        }
    }

    /** @param folder the model folder whose tokenizer files are described, if there is one */
    private static Result write(Path out, String name, Optional<Path> folder, ModelConfig config, GgufArchitecture arch,
                                GgufVocabulary vocabulary, Source source, Optional<GgufFileType> fileType,
                                String vocabularySource) {
        List<GgufTensor> tensors = new TensorPlan(config, source, arch, fileType).tensors();
        GgufFileType type = fileType.orElseGet(() -> GgufFileType.of(tensors.stream()
                .filter(t -> t.name().endsWith("ffn_down_exps.weight")).findFirst().orElseThrow().type()));
        GgufWriter.write(out, metadata(name, folder, config, arch, vocabulary, type), tensors);
        long bytes = tensors.stream().mapToLong(GgufTensor::byteSize).sum();
        return new Result(out, arch.ggufName(), tensors.size(), bytes, type, vocabularySource);
    }
    /** The ids config.json declares special, marked as control tokens in a synthetic vocabulary. */
    private static Set<Integer> specialIds(ModelConfig config) {
        var ids = new HashSet<Integer>(config.tokens().eos());
        config.tokens().bos().ifPresent(ids::add);
        config.tokens().pad().ifPresent(ids::add);
        return ids;
    }

    private static GgufMetadata metadata(String name, Optional<Path> folder, ModelConfig config, GgufArchitecture arch,
                                         GgufVocabulary vocabulary, GgufFileType fileType) {
        var a = (AttentionConfig.Standard) config.attention();
        MoeConfig moe = config.moe().orElseThrow();
        String p = arch.ggufName() + ".";
        var m = GgufMetadata.builder()
                .put("general.architecture", GgufValue.string(arch.ggufName()))
                .put("general.name", GgufValue.string(name))
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
        folder.flatMap(GgufConverter::chatTemplate).ifPresent(t -> m.put("tokenizer.chat_template", GgufValue.string(t)));
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
    private static void addedTokens(Optional<Path> folder, ModelConfig config, GgufMetadata.Builder m) {
        Optional<Path> tokenizerJson = folder.map(f -> f.resolve(ModelFolder.TOKENIZER)).filter(Files::isRegularFile);
        int[] added = tokenizerJson.map(t -> Tokenizer.load(t).encodeIds("", true)).orElse(new int[0]);
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
    private record TensorPlan(ModelConfig config, Source source, GgufArchitecture arch,
                              Optional<GgufFileType> fileType) {
        List<GgufTensor> tensors() {
            var a = (AttentionConfig.Standard) config.attention();
            MoeConfig moe = config.moe().orElseThrow();
            int hidden = config.hiddenSize(), vocab = config.vocabSize(), d = a.headDim();
            int experts = moe.experts(), inter = moe.intermediate();
            var out = new ArrayList<GgufTensor>();
            out.add(matrix("token_embd.weight", "embed_tokens.weight", vocab, hidden));
            for (int i = 0; i < config.numLayers(); i++) {
                String blk = "blk." + i + ".";
                String layer = "layers." + i + ".";
                out.add(vector(blk + "attn_norm.weight", layer + "input_norm.weight", hidden));
                out.add(rotated(blk + "attn_q.weight", layer + "attention.q_proj.weight", a.numHeads(), d, hidden));
                out.add(rotated(blk + "attn_k.weight", layer + "attention.k_proj.weight", a.numKvHeads(), d, hidden));
                out.add(matrix(blk + "attn_v.weight", layer + "attention.v_proj.weight", a.numKvHeads() * d, hidden));
                out.add(matrix(blk + "attn_output.weight", layer + "attention.o_proj.weight", hidden,
                        a.numHeads() * d));
                if (a.qkvBias()) {
                    out.add(vector(blk + "attn_q.bias", layer + "attention.q_proj.bias", a.numHeads() * d));
                    out.add(vector(blk + "attn_k.bias", layer + "attention.k_proj.bias", a.numKvHeads() * d));
                    out.add(vector(blk + "attn_v.bias", layer + "attention.v_proj.bias", a.numKvHeads() * d));
                }
                if (config.norms().qkNorm() != QkNorm.NONE) {
                    boolean perHead = config.norms().qkNorm() == QkNorm.PER_HEAD;
                    out.add(vector(blk + "attn_q_norm.weight", layer + "attention.q_norm.weight",
                            perHead ? d : a.numHeads() * d));
                    out.add(vector(blk + "attn_k_norm.weight", layer + "attention.k_norm.weight",
                            perHead ? d : a.numKvHeads() * d));
                }
                out.add(vector(blk + "ffn_norm.weight", layer + "post_attention_norm.weight", hidden));
                out.add(vector(blk + "ffn_gate_inp.weight", layer + "moe.router.weight", experts, hidden));
                String prefix = layer + "moe.experts.";
                out.add(stacked(blk + "ffn_gate_exps.weight", prefix, "gate_proj", experts, inter, hidden));
                out.add(stacked(blk + "ffn_up_exps.weight", prefix, "up_proj", experts, inter, hidden));
                out.add(stacked(blk + "ffn_down_exps.weight", prefix, "down_proj", experts, hidden, inter));
                int shared = moe.sharedIntermediate();
                if (shared > 0) {
                    // llama.cpp's shared gate is one vector of the model's width, moe4j's a [1, H] matrix
                    out.add(new GgufTensor(blk + "ffn_gate_inp_shexp.weight", GgmlType.F32, new int[] {hidden},
                            List.of(whole(layer + "moe.shared_expert_gate.weight", new int[] {1, hidden}))));
                    String sharedPrefix = layer + "moe.shared_experts.";
                    out.add(matrix(blk + "ffn_gate_shexp.weight", sharedPrefix + "gate_proj.weight", shared, hidden));
                    out.add(matrix(blk + "ffn_up_shexp.weight", sharedPrefix + "up_proj.weight", shared, hidden));
                    out.add(matrix(blk + "ffn_down_shexp.weight", sharedPrefix + "down_proj.weight", hidden, shared));
                }
            }
            out.add(vector("output_norm.weight", "norm.weight", hidden));
            if (!config.tieEmbeddings()) {
                out.add(matrix("output.weight", "lm_head.weight", vocab, hidden));
            }
            return out;
        }

        private GgmlType matrixType(String name, int[] shape, String moe4jName) {
            var model = new GgufFileType.Model(config.numLayers(), config.moe().orElseThrow().experts(),
                    config.tieEmbeddings());
            return fileType.map(t -> t.typeOf(name, shape, model)).orElseGet(() -> source.storedType(moe4jName));
        }

        private GgufPart whole(String moe4jName, int[] shape) {
            return source.rows(moe4jName, shape, 0, shape[0]);
        }

        private GgufTensor matrix(String name, String moe4jName, int... shape) {
            return new GgufTensor(name, matrixType(name, shape, moe4jName), shape, List.of(whole(moe4jName, shape)));
        }

        /** Norm weights and routers: F32 whatever the checkpoint's type, as llama.cpp expects them. */
        private GgufTensor vector(String name, String moe4jName, int... shape) {
            return new GgufTensor(name, GgmlType.F32, shape, List.of(whole(moe4jName, shape)));
        }

        /** A query or key projection, its rows reordered per head where llama.cpp rotates adjacent pairs. */
        private GgufTensor rotated(String name, String moe4jName, int heads, int headDim, int in) {
            int[] shape = {heads * headDim, in};
            GgmlType type = matrixType(name, shape, moe4jName);
            if (!arch.interleavedRope()) {
                return new GgufTensor(name, type, shape, List.of(whole(moe4jName, shape)));
            }
            var rows = pairOrder(heads, headDim).stream().map(r -> source.rows(moe4jName, shape, r, r + 1)).toList();
            return new GgufTensor(name, type, shape, rows);
        }

        /** The experts' matrices of one projection as one [E, rows, cols] tensor. */
        private GgufTensor stacked(String name, String prefix, String projection, int experts, int rows, int cols) {
            int[] one = {rows, cols};
            var parts = new ArrayList<GgufPart>(experts);
            for (int e = 0; e < experts; e++) {
                parts.add(whole(prefix + e + "." + projection + ".weight", one));
            }
            int[] shape = {experts, rows, cols};
            return new GgufTensor(name, matrixType(name, shape, prefix + "0." + projection + ".weight"), shape,
                    parts);
        }
    }

    /**
     * The order of a [heads × d, in] projection's rows that makes adjacent-pair rotation equal the half rotation:
     * within each head, row {@code j} of the first half and row {@code j} of the second half become rows
     * {@code 2j} and {@code 2j + 1}.
     */
    static List<Integer> pairOrder(int heads, int d) {
        int half = d / 2;
        var rows = new ArrayList<Integer>(heads * d);
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < half; j++) {
                for (int s = 0; s < 2; s++) {
                    rows.add(h * d + s * half + j);
                }
            }
        }
        return rows;
    }
}
