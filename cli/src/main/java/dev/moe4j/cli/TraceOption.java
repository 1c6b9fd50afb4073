package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.TokenText;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** {@code --trace-experts FILE}: which experts took each token, as JSON lines written once complete. */
final class TraceOption {
    @Option(names = "--trace-experts", paramLabel = "FILE",
            description = "write one JSON line per token per MoE layer (position, token_id, token, layer, experts in"
                    + " rank order, weights) to FILE, atomically once complete")
    Path file;

    boolean enabled() {
        return file != null;
    }

    /** Checks the flag before anything is loaded. */
    void check() {
        if (file != null && Files.isDirectory(file)) {
            throw new BadInputException("--trace-experts: " + file + " is a folder; give a file name");
        }
    }

    /** Writes the trace of a sequence (all its tokens) to the file. */
    void write(ExpertTrace trace, int[] tokens, TokenText text) {
        ExpertTrace.writeLines(file, trace.jsonLines(tokens, text, java.util.Map.of()));
    }

    void write(List<String> lines) {
        ExpertTrace.writeLines(file, lines);
    }
}
