package dev.moe4j.cli;

import dev.moe4j.model.gguf.GgufFileType;
import dev.moe4j.model.gguf.GgufQuantizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code moe4j quantize IN OUT TYPE}: a GGUF file's matrices in another type, as llama.cpp's llama-quantize does. */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Write a GGUF file again with its matrices in another type (llama.cpp's llama-quantize,"
                + " without an importance matrix): each matrix is decoded from its stored type and encoded into the"
                + " type TYPE's rules give it (q4_k_m: Q4_K, with Q6_K for attn_v and ffn_down in a third of the"
                + " layers and for the output, ...). Norms and routers are copied as they are; the metadata is kept,"
                + " with general.file_type set."})
public final class QuantizeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "IN", description = "the GGUF file to read")
    Path in;

    @Parameters(index = "1", paramLabel = "OUT", description = "the GGUF file to write (replaced atomically if it"
            + " exists)")
    Path out;

    @Parameters(index = "2", paramLabel = "TYPE", description = "f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k"
            + " or mxfp4_moe")
    String type;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        GgufFileType fileType = GgufFileType.parse(type, "TYPE");
        long start = System.nanoTime();
        var result = GgufQuantizer.quantize(in, out, fileType);
        String types = result.types().entrySet().stream().map(e -> e.getKey() + " " + e.getValue())
                .collect(Collectors.joining(", "));
        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "moe4j: wrote %s: %d tensors, %.1f MB (%s: %s); %.1f s%n", result.file(),
                result.tensors(), result.bytes() / 1e6, fileType.name().toLowerCase(Locale.ROOT), types,
                (System.nanoTime() - start) / 1e9);
        err.flush();
        return 0;
    }
}
