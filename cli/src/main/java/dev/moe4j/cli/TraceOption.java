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

    /**
     * Checks the flag before anything is loaded or generated: the file must be one that can be written where it
     * is named, in a folder that exists (none is made for it).
     */
    void check() {
        if (file == null) {
            return;
        }
        if (Files.isDirectory(file)) {
            throw new BadInputException("--trace-experts: " + file + " is a folder; give a file name");
        }
        Path folder = file.toAbsolutePath().getParent();
        if (!Files.isDirectory(folder)) {
            throw new BadInputException("--trace-experts: " + file + ": the folder " + folder
                    + (Files.exists(folder) ? " is not a folder" : " does not exist"));
        }
        if (!Files.isWritable(folder)) {
            throw new BadInputException("--trace-experts: " + file + ": cannot write in " + folder);
        }
        if (Files.exists(file) && !Files.isWritable(file)) {
            throw new BadInputException("--trace-experts: " + file + ": the file exists and cannot be written");
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
