package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.gguf.GgufConverter;
import dev.moe4j.model.gguf.GgufFileType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;

/** {@code moe4j convert --to gguf}: a model folder as one GGUF file for llama.cpp and the tools built on it. */
@Command(name = "convert", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Convert a model folder (config.json + safetensors) to another format.",
                "--to gguf writes one GGUF file that llama.cpp runs with the same results: mixtral becomes llama.cpp's"
                        + " 'llama' (experts stacked, query/key rows reordered for its RoPE), qwen2_moe its 'qwen2moe',"
                        + " qwen3_moe its 'qwen3moe', olmoe (without grouped-query attention) its 'olmoe', gpt_oss its"
                        + " 'gpt-oss' (gate and up of the experts split apart, biases and sinks kept) and deepseek_v3 its"
                        + " 'deepseek2' (latent attention with kv_b split into attn_k_b and attn_v_b, sigmoid routing)."
                        + " The vocabulary comes from tokenizer.json, or is a synthetic one of vocab_size tokens when"
                        + " the folder has none (models of 'moe4j bench make-model', run on token ids).",
                "--type picks the matrices' types as llama.cpp's file types do (q4_k_m: Q4_K with Q6_K for attn_v and"
                        + " ffn_down in a third of the layers and for the output, ...); quantised types are encoded"
                        + " as ggml's reference quantisers encode them. Norms and routers are written in F32 whatever"
                        + " --type says, as llama.cpp does."})
public final class ConvertCommand implements Callable<Integer> {
    @Option(names = "--to", required = true, paramLabel = "FORMAT", description = "the format to write: gguf")
    String to;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "the model folder to convert")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "the file to write (replaced"
            + " atomically if it exists)")
    Path out;

    @Option(names = "--type", defaultValue = "same", paramLabel = "TYPE", description = "the file type: f32, f16,"
            + " bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, mxfp4_moe, or same (each matrix as stored;"
            + " default: ${DEFAULT-VALUE})")
    String type;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        if (!to.equalsIgnoreCase("gguf")) {
            throw new BadInputException("--to: expected gguf, got '" + to + "'");
        }
        Optional<GgufFileType> fileType = type.equalsIgnoreCase("same") ? Optional.empty()
                : Optional.of(GgufFileType.parse(type, "--type"));
        long start = System.nanoTime();
        var result = GgufConverter.convert(model, out, fileType);
        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "moe4j: wrote %s: %s, %d tensors, %.1f MB (%s); vocabulary: %s; %.1f s%n",
                result.file(), result.architecture(), result.tensors(), result.bytes() / 1e6,
                result.fileType().name().toLowerCase(Locale.ROOT), result.vocabulary(),
                (System.nanoTime() - start) / 1e9);
        result.notes().forEach(note -> err.println("moe4j: note: " + note));
        err.flush();
        return 0;
    }
}
