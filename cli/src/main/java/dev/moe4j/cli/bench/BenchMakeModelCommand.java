package dev.moe4j.cli.bench;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelSaver;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.gguf.GgufConverter;
import dev.moe4j.model.gguf.GgufFileType;
import dev.moe4j.model.transformer.RandomWeights;
import dev.moe4j.model.transformer.Transformer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code moe4j bench make-model}: a model with random weights in the shape of a real architecture, written by
 * moe4j as a Hugging Face model folder or, for an output path ending in .gguf, as one GGUF file, so that generation
 * can be benchmarked without downloading a checkpoint. The defaults are a Qwen3-MoE-style model (64 experts, top-8,
 * hidden 1024) of 8 layers. The folder is built in memory and saved; the GGUF file is written tensor by tensor as
 * its values are computed, so a model of a real MoE's size (Qwen3-30B-A3B in q4_k_m) needs little memory.
 */
@Command(name = "make-model", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Write a model with random weights (N(0, 0.02²); router and experts N(0, 1/inputs); norms 1;"
                + " biases N(0, 0.1²)) in a"
                + " real architecture's shape, for benchmarks: a Hugging Face model folder (config.json, safetensors),"
                + " or, when --out ends in .gguf, one GGUF file of --type as 'moe4j convert --to gguf' writes it"
                + " (synthetic vocabulary; the same values as make-model to a folder with --dtype F32 and the same"
                + " seed, then convert), computed as it is written, in bounded memory whatever the model's size.",
                "Defaults: Qwen3-MoE style, 8 layers, hidden 1024, 16 heads of 64 (4 key/value heads), 64 experts of"
                        + " width 384, top-8, vocabulary 32000, BF16.",
                "Qwen3-30B-A3B's geometry in Q4_K_M (about 18 GB): --out qwen3-30b-a3b-q4_k_m.gguf --type q4_k_m"
                        + " --layers 48 --hidden 2048 --heads 32 --kv-heads 4 --head-dim 128 --experts 128"
                        + " --expert-size 768 --top-k 8 --vocab 151936 --context 40960"})
public final class BenchMakeModelCommand implements Callable<Integer> {
    @Option(names = "--out", required = true, paramLabel = "DIR|FILE.gguf", description = "the folder to write (must"
            + " not exist or be empty), or a GGUF file (a path ending in .gguf; replaced atomically if it exists)")
    Path out;

    @Option(names = "--family", defaultValue = "qwen3_moe", paramLabel = "TYPE",
            description = "model_type: qwen3_moe, mixtral, olmoe, gpt_oss or deepseek_v3 (default: ${DEFAULT-VALUE})")
    String family;

    @Option(names = "--layers", paramLabel = "N", defaultValue = "8",
            description = "decoder layers (default: ${DEFAULT-VALUE})")
    int layers;

    @Option(names = "--hidden", paramLabel = "N", defaultValue = "1024",
            description = "hidden size (default: ${DEFAULT-VALUE})")
    int hidden;

    @Option(names = "--heads", paramLabel = "N", defaultValue = "16",
            description = "attention heads (default: ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--kv-heads", paramLabel = "N", defaultValue = "4",
            description = "key/value heads (default: ${DEFAULT-VALUE})")
    int kvHeads;

    @Option(names = "--head-dim", paramLabel = "N",
            description = "width of each attention head, qwen3_moe and gpt_oss; deepseek_v3: the heads' widths"
                    + " without position (qk_nope_head_dim) and of values (default: hidden / heads)")
    Integer headDim;

    @Option(names = "--experts", paramLabel = "N", defaultValue = "64",
            description = "routed experts (default: ${DEFAULT-VALUE})")
    int experts;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "8",
            description = "experts per token (default: ${DEFAULT-VALUE})")
    int topK;

    @Option(names = "--expert-size", paramLabel = "N", defaultValue = "384",
            description = "width of each expert's MLP (default: ${DEFAULT-VALUE})")
    int expertSize;

    @Option(names = "--vocab", paramLabel = "N", defaultValue = "32000",
            description = "vocabulary size (default: ${DEFAULT-VALUE})")
    int vocab;

    @Option(names = "--context", paramLabel = "N", defaultValue = "4096",
            description = "max_position_embeddings (default: ${DEFAULT-VALUE})")
    int context;

    @Option(names = "--sliding-window", paramLabel = "N",
            description = "gpt_oss: the window of its even layers (default: 128)")
    Integer slidingWindow;

    @Option(names = "--q-lora-rank", paramLabel = "N",
            description = "deepseek_v3: rank of the query projection, 0 for none (default: hidden / 2)")
    Integer qLoraRank;

    @Option(names = "--kv-lora-rank", paramLabel = "N",
            description = "deepseek_v3: width of the key/value latent (default: hidden / 4)")
    Integer kvLoraRank;

    @Option(names = "--rope-dim", paramLabel = "N",
            description = "deepseek_v3: the rotary part of each query/key head (default: head width / 2)")
    Integer ropeDim;

    @Option(names = "--dense-layers", paramLabel = "N",
            description = "deepseek_v3: leading dense layers (default: 1)")
    Integer denseLayers;

    @Option(names = "--dense-size", paramLabel = "N",
            description = "deepseek_v3: width of the dense layers' MLP (default: 3 x expert size)")
    Integer denseSize;

    @Option(names = "--shared-experts", paramLabel = "N",
            description = "deepseek_v3: shared experts, each of expert size (default: 1)")
    Integer sharedExperts;

    @Option(names = "--groups", paramLabel = "N",
            description = "deepseek_v3: groups of experts (n_group; default: 8)")
    Integer groups;

    @Option(names = "--top-groups", paramLabel = "N",
            description = "deepseek_v3: groups a token may choose experts from (topk_group; default: groups / 2)")
    Integer topGroups;

    @Option(names = "--dtype", paramLabel = "DTYPE",
            description = "a folder's weights: F32, BF16 or F16 (default: BF16)")
    String dtype;

    @Option(names = "--type", paramLabel = "TYPE",
            description = "a GGUF file's type, as 'moe4j convert --type': f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m,"
                    + " q6_k or mxfp4_moe (default: bf16)")
    String type;

    @Option(names = "--initializer-range", paramLabel = "STD", defaultValue = "0.02",
            description = "standard deviation of the matrices outside the MoE layers; larger makes attention sharper"
                    + " (default: ${DEFAULT-VALUE})")
    double initializerRange;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "1",
            description = "seed of the weights (default: ${DEFAULT-VALUE})")
    long seed;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        boolean gguf = out.getFileName() != null && out.getFileName().toString().toLowerCase(Locale.ROOT)
                .endsWith(".gguf");
        if (gguf && dtype != null) {
            throw new BadInputException("--dtype: a folder's option; a GGUF file (--out " + out + ") takes --type");
        }
        if (!gguf && type != null) {
            throw new BadInputException("--type: a GGUF file's option, for an --out ending in .gguf; a folder takes"
                    + " --dtype");
        }
        String what = gguf ? GgufFileType.parse(type == null ? "bf16" : type, "--type").name().toLowerCase(Locale.ROOT)
                : weightType().name();
        ModelConfig config = HfFamilies.read(Json.parse(configJson(), "make-model"), "the make-model flags");
        if (!gguf) {
            checkTarget();
        }
        PrintWriter err = spec.commandLine().getErr();
        var counts = ParameterCount.of(config);
        err.printf(Locale.ROOT, "moe4j: %s, %d layers, %d experts top-%d: %.1fM parameters (%.1fM active), %s%n",
                family, layers, experts, topK, counts.total() / 1e6, counts.active() / 1e6, what);
        err.flush();
        long start = System.nanoTime();
        if (gguf) {
            var result = GgufConverter.writeRandom(config, "the make-model flags", seed, out,
                    GgufFileType.parse(what, "--type"));
            double seconds = (System.nanoTime() - start) / 1e9;
            err.printf(Locale.ROOT, "moe4j: wrote %s: %s, %d tensors, %.1f MB in %.1f s (%.1fM parameters/s)%n",
                    out, result.architecture(), result.tensors(), result.bytes() / 1e6, seconds,
                    counts.total() / 1e6 / seconds);
            result.notes().forEach(note -> err.println("moe4j: note: " + note));
        } else {
            var model = new Transformer(config, new RandomWeights(config, seed));
            ModelSaver.save(model, out, family, weightType(), ModelSaver.DEFAULT_SHARD_BYTES);
            err.printf(Locale.ROOT, "moe4j: wrote %s in %.1f s%n", out, (System.nanoTime() - start) / 1e9);
        }
        err.flush();
        return 0;
    }

    private String configJson() {
        boolean deepseek = family.equals("deepseek_v3");
        // latent attention has as many key/value heads as query heads: --kv-heads is not its
        if (!deepseek && heads % kvHeads != 0) {
            throw new BadInputException("--heads (" + heads + ") must be a multiple of --kv-heads (" + kvHeads + ")");
        }
        if (headDim == null && hidden % heads != 0) {
            throw new BadInputException("--hidden (" + hidden + ") must be a multiple of --heads (" + heads
                    + "), or give --head-dim");
        }
        if (!(initializerRange > 0)) {
            throw new BadInputException("--initializer-range: must be positive, got " + initializerRange);
        }
        only("--head-dim", headDim, "qwen3_moe", "gpt_oss", "deepseek_v3");
        only("--sliding-window", slidingWindow, "gpt_oss");
        for (var flag : new Object[][] {{"--q-lora-rank", qLoraRank}, {"--kv-lora-rank", kvLoraRank},
                {"--rope-dim", ropeDim}, {"--dense-layers", denseLayers}, {"--dense-size", denseSize},
                {"--shared-experts", sharedExperts}, {"--groups", groups}, {"--top-groups", topGroups}}) {
            only((String) flag[0], flag[1], "deepseek_v3");
        }
        int headWidth = headDim != null ? headDim : hidden / heads;
        String common = String.format(Locale.ROOT, "\"vocab_size\": %d, \"hidden_size\": %d, \"num_hidden_layers\": %d,"
                        + " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"num_experts_per_tok\": %d,"
                        + " \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-6,"
                        + " \"tie_word_embeddings\": false, \"initializer_range\": %s",
                vocab, hidden, layers, heads, deepseek ? heads : kvHeads, topK, context, initializerRange);
        return switch (family) {
            case "qwen3_moe" -> String.format(Locale.ROOT, "{\"model_type\": \"qwen3_moe\", %s, \"head_dim\": %d,"
                    + " \"num_experts\": %d, \"moe_intermediate_size\": %d, \"intermediate_size\": %d,"
                    + " \"norm_topk_prob\": true, \"decoder_sparse_step\": 1, \"mlp_only_layers\": [],"
                    + " \"rope_theta\": 1000000.0}", common, headWidth, experts, expertSize, 3 * expertSize);
            case "mixtral" -> String.format(Locale.ROOT, "{\"model_type\": \"mixtral\", %s, \"num_local_experts\": %d,"
                    + " \"intermediate_size\": %d, \"rope_theta\": 1000000.0}", common, experts, expertSize);
            case "olmoe" -> String.format(Locale.ROOT, "{\"model_type\": \"olmoe\", %s, \"num_experts\": %d,"
                    + " \"intermediate_size\": %d, \"rope_theta\": 1000000.0}", common, experts, expertSize);
            // gpt-oss's own RoPE: theta 150000, YaRN x32 from 4096 positions without rounding its correction range
            case "gpt_oss" -> String.format(Locale.ROOT, "{\"model_type\": \"gpt_oss\", %s, \"head_dim\": %d,"
                    + " \"num_local_experts\": %d, \"intermediate_size\": %d, \"sliding_window\": %d,"
                    + " \"rope_theta\": 150000.0, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 32.0,"
                    + " \"original_max_position_embeddings\": 4096, \"beta_fast\": 32.0, \"beta_slow\": 1.0,"
                    + " \"truncate\": false}}", common, headWidth, experts, expertSize,
                    slidingWindow == null ? 128 : slidingWindow);
            // DeepSeek-V3's YaRN (x40 from 4096 positions, mscale and mscale_all_dim 1) and routed scaling
            case "deepseek_v3" -> {
                int groupCount = groups == null ? 8 : groups;
                yield String.format(Locale.ROOT, "{\"model_type\": \"deepseek_v3\", %s, \"n_routed_experts\": %d,"
                        + " \"moe_intermediate_size\": %d, \"intermediate_size\": %d, \"n_shared_experts\": %d,"
                        + " \"q_lora_rank\": %s, \"kv_lora_rank\": %d, \"qk_nope_head_dim\": %d,"
                        + " \"qk_rope_head_dim\": %d, \"v_head_dim\": %d, \"n_group\": %d, \"topk_group\": %d,"
                        + " \"first_k_dense_replace\": %d, \"norm_topk_prob\": true, \"routed_scaling_factor\": 2.5,"
                        + " \"rope_interleave\": true, \"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\":"
                        + " \"yarn\", \"factor\": 40.0, \"original_max_position_embeddings\": 4096, \"mscale\": 1.0,"
                        + " \"mscale_all_dim\": 1.0, \"beta_fast\": 32.0, \"beta_slow\": 1.0},"
                        + " \"num_nextn_predict_layers\": 0}", common, experts, expertSize,
                        denseSize == null ? 3 * expertSize : denseSize, sharedExperts == null ? 1 : sharedExperts,
                        qLoraRank == null ? String.valueOf(hidden / 2) : qLoraRank == 0 ? "null" : qLoraRank.toString(),
                        kvLoraRank == null ? hidden / 4 : kvLoraRank, headWidth,
                        ropeDim == null ? headWidth / 2 : ropeDim, headWidth, groupCount,
                        topGroups == null ? Math.max(1, groupCount / 2) : topGroups,
                        denseLayers == null ? 1 : denseLayers);
            }
            default -> throw new BadInputException("--family: expected qwen3_moe, mixtral, olmoe, gpt_oss or"
                    + " deepseek_v3, got '" + family + "'");
        };
    }

    /** Refuses a flag given for a family that does not have what it sets. */
    private void only(String flag, Object value, String... families) {
        if (value != null && !java.util.List.of(families).contains(family)) {
            throw new BadInputException(flag + ": sets what only " + String.join(", ", families) + " models have, not "
                    + family + "'s");
        }
    }

    private DType weightType() {
        String name = dtype == null ? "BF16" : dtype;
        for (DType t : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            if (t.name().equalsIgnoreCase(name)) {
                return t;
            }
        }
        throw new BadInputException("--dtype: expected F32, BF16 or F16, got '" + name + "'");
    }

    private void checkTarget() {
        if (Files.exists(out)) {
            try (var entries = Files.list(out)) {
                if (entries.findAny().isPresent()) {
                    throw new BadInputException(out + ": exists and is not empty; give a new folder");
                }
            } catch (IOException e) {
                throw new BadInputException(out + ": not a folder that can be written (" + e.getMessage() + ")");
            }
        }
    }
}
