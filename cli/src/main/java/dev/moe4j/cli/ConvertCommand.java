package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.model.gguf.GgufConverter;
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
                        + " 'llama' (experts stacked, query/key rows reordered for its RoPE), qwen3_moe its 'qwen3moe'."
                        + " The vocabulary comes from tokenizer.json, or is a synthetic one of vocab_size tokens when"
                        + " the folder has none (models of 'moe4j bench make-model', run on token ids).",
                "Norms and routers are written in F32 whatever --dtype says, as llama.cpp's converter does."})
public final class ConvertCommand implements Callable<Integer> {
    @Option(names = "--to", required = true, paramLabel = "FORMAT", description = "the format to write: gguf")
    String to;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "the model folder to convert")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "the file to write (replaced"
            + " atomically if it exists)")
    Path out;

    @Option(names = "--dtype", defaultValue = "same", paramLabel = "TYPE", description = "type of the matrices:"
            + " f32, bf16, f16, or same (each as stored; default: ${DEFAULT-VALUE})")
    String dtype;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        if (!to.equalsIgnoreCase("gguf")) {
            throw new BadInputException("--to: expected gguf, got '" + to + "'");
        }
        Optional<DType> type = switch (dtype.toLowerCase(Locale.ROOT)) {
            case "same" -> Optional.empty();
            case "f32" -> Optional.of(DType.F32);
            case "bf16" -> Optional.of(DType.BF16);
            case "f16" -> Optional.of(DType.F16);
            default -> throw new BadInputException("--dtype: expected f32, bf16, f16 or same, got '" + dtype + "'");
        };
        long start = System.nanoTime();
        var result = GgufConverter.convert(model, out, type);
        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "moe4j: wrote %s: %s, %d tensors, %.1f MB (matrices %s); vocabulary: %s; %.1f s%n",
                result.file(), result.architecture(), result.tensors(), result.bytes() / 1e6, result.matrixType(),
                result.vocabulary(), (System.nanoTime() - start) / 1e9);
        err.flush();
        return 0;
    }
}
