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
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.RandomWeights;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.GroupLimit;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.LongUnaryOperator;

/**
 * Converts a Hugging Face model folder that moe4j loads into one GGUF file that llama.cpp runs with the same
 * results: the weights under llama.cpp's tensor names (experts stacked [E, I, H] and [E, H, I], query and key rows
 * reordered where llama.cpp rotates adjacent pairs, gpt-oss's interleaved gate and up split apart, DeepSeek's kv_b
 * split into the per-head key and value parts llama.cpp's latent attention multiplies by), the hyperparameters under
 * its keys, and the vocabulary of the
 * folder's tokenizer.json, or a synthetic one of vocab_size tokens for a model without a tokenizer (those of
 * {@code moe4j bench make-model}, run on token ids).
 *
 * <p>Matrices are written as the requested {@link GgufFileType} gives them (quantised on the way for the block
 * types, with llama.cpp's mixture rules for q4_k_m and the like), or each in its stored type; norms, routers,
 * biases and sinks always in F32, as llama.cpp's own converter writes them (a lossless widening from BF16/F16). The
 * weights are read
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
     * @param notes      where llama.cpp computes the model a little differently from transformers, for the user
     */
    public record Result(Path file, String architecture, int tensors, long bytes, GgufFileType fileType,
                         String vocabulary, List<String> notes) {
        public Result {
            notes = List.copyOf(notes);
        }
    }

    /**
     * Where the plan's weights come from, by moe4j's names (listed in {@code WeightSource}): a checkpoint's tensors
     * or values computed as they are written.
     */
    private interface Source {
        /** Rows {@code [from, to)} (along the first dimension) of the weight {@code name} of {@code shape}. */
        GgufPart rows(String name, int[] shape, int from, int to);

        /**
         * The elements of the weight {@code name} of {@code shape} by flat index, for a tensor that llama.cpp lays
         * out otherwise (transposed, interleaved rows split), which is gathered element by element.
         */
        GgufPart.Values values(String name, int[] shape);

        /** The type a matrix keeps when no file type is given. */
        GgmlType storedType(String name);

        /** How the routed experts are held: per expert, or stacked and transposed (a gpt-oss folder). */
        ExpertStorage experts();
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
                public GgufPart.Values values(String name, int[] shape) {
                    Tensor t = weights.get(name);
                    if (!Arrays.equals(t.shape(), shape)) {
                        throw new IllegalStateException(name + ": the plan expects " + Arrays.toString(shape)
                                + ", the checked checkpoint holds " + t);
                    }
                    return (index, dst, n) -> {
                        for (int i = 0; i < n; i++) {
                            dst[i] = t.getFloat(index + i);
                        }
                    };
                }

                @Override
                public GgmlType storedType(String name) {
                    return GgmlType.of(weights.get(name).dtype()).orElseThrow();
                }

                @Override
                public ExpertStorage experts() {
                    return weights.checkpoint().expertStorage();
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
            public GgufPart.Values values(String name, int[] shape) {
                return random.values(name, shape)::fill;
            }

            @Override
            public GgmlType storedType(String name) {
                return GgmlType.F32;
            }

            @Override
            public ExpertStorage experts() {
                return random.expertStorage();
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
        return new Result(out, arch.ggufName(), tensors.size(), bytes, type, vocabularySource, notes(config));
    }

    /**
     * What llama.cpp computes otherwise, though close enough that the model is converted: ggml always rounds YaRN's
     * correction range to whole dimensions, which gpt-oss's config.json (truncate: false) asks transformers not to
     * do. It changes the frequencies of the few dimensions inside the range; moe4j reads the file as llama.cpp
     * computes it.
     */
    private static List<String> notes(ModelConfig config) {
        if (config.rope().scaling() instanceof RopeConfig.Yarn y && !y.truncate()) {
            return List.of("llama.cpp rounds YaRN's correction range to whole dimensions, which this config.json"
                    + " (truncate: false) does not: the rotary frequencies of the dimensions inside the range differ"
                    + " a little from transformers', and moe4j reads the file as llama.cpp runs it");
        }
        return List.of();
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
                // the experts' width for llama and olmoe; the dense layers' for deepseek2
                .put(p + "feed_forward_length", GgufValue.uint32(config.denseIntermediateSize() > 0
                        ? config.denseIntermediateSize() : moe.intermediate()))
                .put(p + "attention.head_count", GgufValue.uint32(config.attention().numHeads()));
        GgufValue eps = GgufValue.float32((float) config.norms().eps());
        if (config.attention() instanceof AttentionConfig.Latent a) {
            latent(m, p, config, a, eps);
        } else {
            var a = (AttentionConfig.Standard) config.attention();
            m.put(p + "attention.head_count_kv", GgufValue.uint32(a.numKvHeads()))
                    .put(p + "attention.key_length", GgufValue.uint32(a.headDim()))
                    .put(p + "attention.value_length", GgufValue.uint32(a.headDim()))
                    .put(p + "attention.layer_norm_rms_epsilon", eps)
                    .put(p + "rope.dimension_count", GgufValue.uint32(a.headDim()));
        }
        m.put(p + "rope.freq_base", GgufValue.float32((float) config.rope().theta()))
                .put(p + "expert_count", GgufValue.uint32(moe.experts()))
                .put(p + "expert_used_count", GgufValue.uint32(moe.topK()));
        if (arch != GgufArchitecture.LLAMA && arch != GgufArchitecture.OLMOE) {
            m.put(p + "expert_feed_forward_length", GgufValue.uint32(moe.intermediate()));
        }
        if (moe.sharedIntermediate() > 0 && arch == GgufArchitecture.QWEN2MOE) {
            m.put(p + "expert_shared_feed_forward_length", GgufValue.uint32(moe.sharedIntermediate()));
        }
        if (arch == GgufArchitecture.GPT_OSS) {
            // the window of the even layers (checked to alternate with full ones)
            m.put(p + "attention.sliding_window", GgufValue.uint32(config.layers().getFirst().slidingWindow()));
        }
        switch (config.rope().scaling()) {
            case RopeConfig.Linear linear -> {
                m.put(p + "rope.scaling.type", GgufValue.string("linear"));
                m.put(p + "rope.scaling.factor", GgufValue.float32((float) linear.factor()));
            }
            case RopeConfig.Yarn y -> yarn(m, p, y);
            default -> {
            }
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
     * deepseek2's keys as llama.cpp's current converter writes them: the heads run as one query head per head
     * against a single latent key head (head_count_kv 1, key_length the latent plus the rotary part, value_length
     * the latent), the heads' own widths under the _mla keys, and DeepSeek-V3's router.
     */
    private static void latent(GgufMetadata.Builder m, String p, ModelConfig config, AttentionConfig.Latent a,
                               GgufValue eps) {
        MoeConfig moe = config.moe().orElseThrow();
        m.put(p + "attention.head_count_kv", GgufValue.uint32(1))
                .put(p + "attention.key_length", GgufValue.uint32(a.kvLoraRank() + a.qkRopeHeadDim()))
                .put(p + "attention.value_length", GgufValue.uint32(a.kvLoraRank()))
                .put(p + "attention.layer_norm_rms_epsilon", eps)
                .put(p + "attention.key_length_mla", GgufValue.uint32(a.qkHeadDim()))
                .put(p + "attention.value_length_mla", GgufValue.uint32(a.vHeadDim()))
                .put(p + "rope.dimension_count", GgufValue.uint32(a.qkRopeHeadDim()))
                // required by llama.cpp whatever the layer count; 0 projects queries straight from the hidden state
                .put(p + "attention.q_lora_rank", GgufValue.uint32(a.qLoraRank()))
                .put(p + "attention.kv_lora_rank", GgufValue.uint32(a.kvLoraRank()))
                .put(p + "leading_dense_block_count", GgufValue.uint32(config.denseLayerIndices().size()))
                .put(p + "expert_shared_count", GgufValue.uint32(moe.sharedIntermediate() / moe.intermediate()))
                .put(p + "expert_weights_scale", GgufValue.float32((float) moe.routedScalingFactor()))
                .put(p + "expert_weights_norm", GgufValue.bool(moe.normalizeTopK()))
                .put(p + "expert_gating_func", GgufValue.uint32(GgufModelConfig.SIGMOID_GATING));
        GroupLimit groups = moe.groupLimit();
        // llama.cpp refuses as many groups used as there are: an unlimited choice has no group keys
        if (groups.isLimited()) {
            m.put(p + "expert_group_count", GgufValue.uint32(groups.groups()))
                    .put(p + "expert_group_used_count", GgufValue.uint32(groups.topGroups()));
        }
    }

    /**
     * YaRN under llama.cpp's keys; the betas only where they are not llama.cpp's defaults (32 and 1), and for
     * deepseek2 the logit scale as 0.1 × mscale_all_dim (the checks made mscale equal to it).
     */
    private static void yarn(GgufMetadata.Builder m, String p, RopeConfig.Yarn y) {
        m.put(p + "rope.scaling.type", GgufValue.string("yarn"));
        m.put(p + "rope.scaling.factor", GgufValue.float32((float) y.factor()));
        y.originalMaxPositions().ifPresent(n -> m.put(p + "rope.scaling.original_context_length",
                GgufValue.uint32(n)));
        if (y.betaFast() != 32) {
            m.put(p + "rope.scaling.yarn_beta_fast", GgufValue.float32((float) y.betaFast()));
        }
        if (y.betaSlow() != 1) {
            m.put(p + "rope.scaling.yarn_beta_slow", GgufValue.float32((float) y.betaSlow()));
        }
        y.mscaleAllDim().ifPresent(all -> m.put(p + "rope.scaling.yarn_log_multiplier",
                GgufValue.float32((float) (0.1 * all))));
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
            int hidden = config.hiddenSize(), vocab = config.vocabSize();
            var out = new ArrayList<GgufTensor>();
            out.add(matrix("token_embd.weight", "embed_tokens.weight", vocab, hidden));
            for (int i = 0; i < config.numLayers(); i++) {
                String blk = "blk." + i + ".";
                String layer = "layers." + i + ".";
                out.add(vector(blk + "attn_norm.weight", layer + "input_norm.weight", hidden));
                if (config.attention() instanceof AttentionConfig.Latent a) {
                    latentAttention(out, blk, layer + "attention.", a);
                } else {
                    standardAttention(out, blk, layer + "attention.", (AttentionConfig.Standard) config.attention());
                }
                // gpt-oss's pre-FFN norm keeps transformers' name in llama.cpp
                out.add(vector(blk + (arch == GgufArchitecture.GPT_OSS ? "post_attention_norm" : "ffn_norm")
                        + ".weight", layer + "post_attention_norm.weight", hidden));
                if (config.layers().get(i).moe()) {
                    moe(out, blk, layer + "moe.");
                } else {
                    int width = config.denseIntermediateSize();
                    out.add(matrix(blk + "ffn_gate.weight", layer + "mlp.gate_proj.weight", width, hidden));
                    out.add(matrix(blk + "ffn_up.weight", layer + "mlp.up_proj.weight", width, hidden));
                    out.add(matrix(blk + "ffn_down.weight", layer + "mlp.down_proj.weight", hidden, width));
                }
            }
            out.add(vector("output_norm.weight", "norm.weight", hidden));
            if (!config.tieEmbeddings()) {
                out.add(matrix("output.weight", "lm_head.weight", vocab, hidden));
            }
            return out;
        }

        private void standardAttention(List<GgufTensor> out, String blk, String attention,
                                       AttentionConfig.Standard a) {
            int hidden = config.hiddenSize(), d = a.headDim();
            out.add(rotated(blk + "attn_q.weight", attention + "q_proj.weight", a.numHeads(), d, hidden));
            out.add(rotated(blk + "attn_k.weight", attention + "k_proj.weight", a.numKvHeads(), d, hidden));
            out.add(matrix(blk + "attn_v.weight", attention + "v_proj.weight", a.numKvHeads() * d, hidden));
            out.add(matrix(blk + "attn_output.weight", attention + "o_proj.weight", hidden, a.numHeads() * d));
            if (a.qkvBias()) {
                out.add(vector(blk + "attn_q.bias", attention + "q_proj.bias", a.numHeads() * d));
                out.add(vector(blk + "attn_k.bias", attention + "k_proj.bias", a.numKvHeads() * d));
                out.add(vector(blk + "attn_v.bias", attention + "v_proj.bias", a.numKvHeads() * d));
            }
            if (a.outputBias()) {
                out.add(vector(blk + "attn_output.bias", attention + "o_proj.bias", hidden));
            }
            if (a.sinks()) {
                out.add(vector(blk + "attn_sinks.weight", attention + "sinks", a.numHeads()));
            }
            if (config.norms().qkNorm() != QkNorm.NONE) {
                boolean perHead = config.norms().qkNorm() == QkNorm.PER_HEAD;
                out.add(vector(blk + "attn_q_norm.weight", attention + "q_norm.weight",
                        perHead ? d : a.numHeads() * d));
                out.add(vector(blk + "attn_k_norm.weight", attention + "k_norm.weight",
                        perHead ? d : a.numKvHeads() * d));
            }
        }

        /**
         * DeepSeek's latent attention as llama.cpp's current converter writes it: kv_b_proj split per head into
         * attn_k_b, the key rows transposed ([heads, latent, nope]: the query's nope part is multiplied into the
         * latent), and attn_v_b, the value rows as they are ([heads, v, latent]).
         */
        private void latentAttention(List<GgufTensor> out, String blk, String attention, AttentionConfig.Latent a) {
            int hidden = config.hiddenSize(), heads = a.numHeads(), qk = a.qkHeadDim();
            int latent = a.kvLoraRank(), nope = a.qkNopeHeadDim(), v = a.vHeadDim();
            if (a.qLoraRank() > 0) {
                out.add(matrix(blk + "attn_q_a.weight", attention + "q_a_proj.weight", a.qLoraRank(), hidden));
                out.add(vector(blk + "attn_q_a_norm.weight", attention + "q_a_norm.weight", a.qLoraRank()));
                out.add(matrix(blk + "attn_q_b.weight", attention + "q_b_proj.weight", heads * qk, a.qLoraRank()));
            } else {
                out.add(matrix(blk + "attn_q.weight", attention + "q_proj.weight", heads * qk, hidden));
            }
            out.add(matrix(blk + "attn_kv_a_mqa.weight", attention + "kv_a_proj.weight", latent + a.qkRopeHeadDim(),
                    hidden));
            out.add(vector(blk + "attn_kv_a_norm.weight", attention + "kv_a_norm.weight", latent));
            String kvB = attention + "kv_b_proj.weight";
            int[] kvBShape = {heads * (nope + v), latent};
            GgufPart.Values kv = source.values(kvB, kvBShape);
            int[] kShape = {heads, latent, nope};
            // element (h, l, j) of attn_k_b is element (h·(nope + v) + j, l) of kv_b_proj
            out.add(new GgufTensor(blk + "attn_k_b.weight", matrixType(blk + "attn_k_b.weight", kShape, kvB), kShape,
                    List.of(gathered(kv, Tensor.elementCount(kShape), i -> {
                        long h = i / ((long) latent * nope), l = i / nope % latent, j = i % nope;
                        return (h * (nope + v) + j) * latent + l;
                    }))));
            int[] vShape = {heads, v, latent};
            var valueRows = new ArrayList<GgufPart>(heads);
            for (int h = 0; h < heads; h++) {
                int first = h * (nope + v) + nope;
                valueRows.add(source.rows(kvB, kvBShape, first, first + v));
            }
            out.add(new GgufTensor(blk + "attn_v_b.weight", matrixType(blk + "attn_v_b.weight", vShape, kvB), vShape,
                    valueRows));
            out.add(matrix(blk + "attn_output.weight", attention + "o_proj.weight", hidden, heads * v));
        }

        private void moe(List<GgufTensor> out, String blk, String moePrefix) {
            MoeConfig moe = config.moe().orElseThrow();
            int hidden = config.hiddenSize(), experts = moe.experts(), inter = moe.intermediate();
            out.add(vector(blk + "ffn_gate_inp.weight", moePrefix + "router.weight", experts, hidden));
            if (moe.routerBias()) {
                out.add(vector(blk + "ffn_gate_inp.bias", moePrefix + "router.bias", experts));
            }
            if (moe.selectionBias()) {
                out.add(vector(blk + "exp_probs_b.bias", moePrefix + "router.selection_bias", experts));
            }
            String prefix = moePrefix + "experts.";
            if (source.experts() == ExpertStorage.TRANSPOSED) {
                transposedExperts(out, blk, prefix);
            } else {
                out.add(stacked(blk + "ffn_gate_exps.weight", prefix, "gate_proj", experts, inter, hidden));
                out.add(stacked(blk + "ffn_up_exps.weight", prefix, "up_proj", experts, inter, hidden));
                out.add(stacked(blk + "ffn_down_exps.weight", prefix, "down_proj", experts, hidden, inter));
                if (moe.expertBias()) {
                    out.add(stackedBias(blk + "ffn_gate_exps.bias", prefix, "gate_proj", experts, inter));
                    out.add(stackedBias(blk + "ffn_up_exps.bias", prefix, "up_proj", experts, inter));
                    out.add(stackedBias(blk + "ffn_down_exps.bias", prefix, "down_proj", experts, hidden));
                }
            }
            int shared = moe.sharedIntermediate();
            if (shared > 0) {
                if (moe.sharedGate()) {
                    // llama.cpp's shared gate is one vector of the model's width, moe4j's a [1, H] matrix
                    out.add(new GgufTensor(blk + "ffn_gate_inp_shexp.weight", GgmlType.F32, new int[] {hidden},
                            List.of(whole(moePrefix + "shared_expert_gate.weight", new int[] {1, hidden}))));
                }
                String sharedPrefix = moePrefix + "shared_experts.";
                out.add(matrix(blk + "ffn_gate_shexp.weight", sharedPrefix + "gate_proj.weight", shared, hidden));
                out.add(matrix(blk + "ffn_up_shexp.weight", sharedPrefix + "up_proj.weight", shared, hidden));
                out.add(matrix(blk + "ffn_down_shexp.weight", sharedPrefix + "down_proj.weight", hidden, shared));
            }
        }

        /**
         * A gpt-oss folder's experts, stacked and stored [in, out] with gate and up interleaved (gate_up_proj
         * [E, H, 2I]: column 2i is gate row i, column 2i + 1 up row i), as llama.cpp's separate [E, I, H] gate and
         * up and [E, H, I] down, and the biases split alike.
         */
        private void transposedExperts(List<GgufTensor> out, String blk, String prefix) {
            MoeConfig moe = config.moe().orElseThrow();
            int hidden = config.hiddenSize(), experts = moe.experts(), inter = moe.intermediate();
            String gateUp = prefix + "gate_up_proj", down = prefix + "down_proj";
            GgufPart.Values gu = source.values(gateUp, new int[] {experts, hidden, 2 * inter});
            int[] inShape = {experts, inter, hidden};
            for (int half = 0; half < 2; half++) {
                int column = half;
                String name = blk + (half == 0 ? "ffn_gate_exps" : "ffn_up_exps") + ".weight";
                // element (e, i, h) is element (e, h, 2i + half) of gate_up_proj
                out.add(new GgufTensor(name, matrixType(name, inShape, gateUp), inShape,
                        List.of(gathered(gu, Tensor.elementCount(inShape), x -> {
                            long e = x / ((long) inter * hidden), i = x / hidden % inter, h = x % hidden;
                            return (e * hidden + h) * 2 * inter + 2 * i + column;
                        }))));
            }
            int[] outShape = {experts, hidden, inter};
            String downName = blk + "ffn_down_exps.weight";
            // element (e, h, i) is element (e, i, h) of down_proj
            out.add(new GgufTensor(downName, matrixType(downName, outShape, down), outShape, List.of(gathered(
                    source.values(down, new int[] {experts, inter, hidden}), Tensor.elementCount(outShape), x -> {
                        long e = x / ((long) hidden * inter), h = x / inter % hidden, i = x % inter;
                        return (e * inter + i) * hidden + h;
                    }))));
            GgufPart.Values guBias = source.values(gateUp + "_bias", new int[] {experts, 2 * inter});
            for (int half = 0; half < 2; half++) {
                int column = half;
                out.add(new GgufTensor(blk + (half == 0 ? "ffn_gate_exps" : "ffn_up_exps") + ".bias", GgmlType.F32,
                        new int[] {experts, inter}, List.of(gathered(guBias, (long) experts * inter,
                        x -> x / inter * 2 * inter + 2 * (x % inter) + column))));
            }
            out.add(vector(blk + "ffn_down_exps.bias", down + "_bias", experts, hidden));
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

        /** Norm weights, routers, biases and sinks: F32 whatever the checkpoint's type, as llama.cpp expects them. */
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

        /** The experts' biases of one projection as one [E, rows] F32 tensor. */
        private GgufTensor stackedBias(String name, String prefix, String projection, int experts, int rows) {
            var parts = new ArrayList<GgufPart>(experts);
            for (int e = 0; e < experts; e++) {
                parts.add(whole(prefix + e + "." + projection + ".bias", new int[] {rows}));
            }
            return new GgufTensor(name, GgmlType.F32, new int[] {experts, rows}, parts);
        }
    }

    /** {@code size} elements, element {@code i} being element {@code from.applyAsLong(i)} of {@code source}. */
    private static GgufPart gathered(GgufPart.Values source, long size, LongUnaryOperator from) {
        return new GgufPart.Computed((index, dst, n) -> {
            float[] one = new float[1];
            for (int i = 0; i < n; i++) {
                source.fill(from.applyAsLong(index + i), one, 1);
                dst[i] = one[0];
            }
        }, 0, size);
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
