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
        description = {"Write a model with random weights (N(0, 0.02²); router and experts N(0, 1/inputs); norms 1) in a"
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
            description = "model_type: qwen3_moe, mixtral or olmoe (default: ${DEFAULT-VALUE})")
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
            description = "width of each attention head, qwen3_moe only (default: hidden / heads)")
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

    @Option(names = "--dtype", paramLabel = "DTYPE",
            description = "a folder's weights: F32, BF16 or F16 (default: BF16)")
    String dtype;

    @Option(names = "--type", paramLabel = "TYPE",
            description = "a GGUF file's type, as 'moe4j convert --type': f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m,"
                    + " q6_k or mxfp4_moe (default: bf16)")
    String type;

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
        } else {
            var model = new Transformer(config, new RandomWeights(config, seed));
            ModelSaver.save(model, out, family, weightType(), ModelSaver.DEFAULT_SHARD_BYTES);
            err.printf(Locale.ROOT, "moe4j: wrote %s in %.1f s%n", out, (System.nanoTime() - start) / 1e9);
        }
        err.flush();
        return 0;
    }

    private String configJson() {
        if (heads % kvHeads != 0) {
            throw new BadInputException("--heads (" + heads + ") must be a multiple of --kv-heads (" + kvHeads + ")");
        }
        if (headDim == null && hidden % heads != 0) {
            throw new BadInputException("--hidden (" + hidden + ") must be a multiple of --heads (" + heads
                    + "), or give --head-dim");
        }
        if (headDim != null && !family.equals("qwen3_moe")) {
            throw new BadInputException("--head-dim: only qwen3_moe sets a head width; " + family
                    + "'s heads are hidden / heads wide");
        }
        int headWidth = headDim != null ? headDim : hidden / heads;
        String common = String.format(Locale.ROOT, "\"vocab_size\": %d, \"hidden_size\": %d, \"num_hidden_layers\": %d,"
                        + " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"num_experts_per_tok\": %d,"
                        + " \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0,"
                        + " \"tie_word_embeddings\": false, \"initializer_range\": 0.02",
                vocab, hidden, layers, heads, kvHeads, topK, context);
        return switch (family) {
            case "qwen3_moe" -> String.format(Locale.ROOT, "{\"model_type\": \"qwen3_moe\", %s, \"head_dim\": %d,"
                    + " \"num_experts\": %d, \"moe_intermediate_size\": %d, \"intermediate_size\": %d,"
                    + " \"norm_topk_prob\": true, \"decoder_sparse_step\": 1, \"mlp_only_layers\": []}",
                    common, headWidth, experts, expertSize, 3 * expertSize);
            case "mixtral" -> String.format(Locale.ROOT, "{\"model_type\": \"mixtral\", %s, \"num_local_experts\": %d,"
                    + " \"intermediate_size\": %d}", common, experts, expertSize);
            case "olmoe" -> String.format(Locale.ROOT, "{\"model_type\": \"olmoe\", %s, \"num_experts\": %d,"
                    + " \"intermediate_size\": %d}", common, experts, expertSize);
            default -> throw new BadInputException("--family: expected qwen3_moe, mixtral or olmoe, got '" + family
                    + "'");
        };
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
