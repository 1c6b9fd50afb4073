package dev.moe4j.cli;

import dev.moe4j.model.ModelFolder;

import java.io.InputStream;

/**
 * What the commands get from outside the command line: standard input (the chat reads it), whether standard
 * output is a terminal (colours only go to one unless asked), and how a model folder's weights are opened.
 */
record CommandContext(InputStream in, boolean terminal, ModelFolder.Opener models) {
    /** Commands that use the context receive it before they run. */
    interface User {
        void context(CommandContext context);
    }
}
