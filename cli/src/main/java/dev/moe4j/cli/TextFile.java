package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** A text file a command reads whole (calibration or evaluation text), with a one-line error naming the option. */
final class TextFile {
    private TextFile() {
    }

    static String read(String option, Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new BadInputException(option + " " + file + ": cannot read the text ("
                    + (Files.exists(file) ? BadInputException.oneLine(e.getMessage()) : "no such file") + ")");
        }
    }
}
