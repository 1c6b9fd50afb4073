package dev.moe4j.cli;

import dev.moe4j.core.backend.Backend;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.config.ModelConfig;

import java.io.InputStream;
import java.nio.file.Path;

/**
 * What the commands get from outside the command line: standard input (the chat reads it), whether standard
 * output is a terminal (colours only go to one unless asked), and how a model folder's weights are opened.
 */
record CommandContext(InputStream in, boolean terminal, ModelOpener models) {
    /** Opens the weights of a model folder whose config.json has already been read, on a device's backend. */
    @FunctionalInterface
    interface ModelOpener {
        LanguageModel open(Path folder, ModelConfig config, Backend backend);
    }

    /** Commands that use the context receive it before they run. */
    interface User {
        void context(CommandContext context);
    }
}
