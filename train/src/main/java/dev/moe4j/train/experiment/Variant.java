package dev.moe4j.train.experiment;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One arm of an experiment: the {@code moe4j train} options it changes from the experiment's base.
 *
 * @param name     folder-safe name, used in run folders ({@code <name>-s<seed>}) and results
 * @param label    a few words for tables and legends
 * @param settings option keys of {@code moe4j train} and their values
 * @param note     what is held equal and how, in a sentence (for the report and RESULTS.md)
 */
public record Variant(String name, String label, Map<String, String> settings, String note) {
    public Variant {
        if (!name.matches("[a-z0-9][a-z0-9.+-]*")) {
            throw new IllegalArgumentException("variant name '" + name + "' must be lower-case letters, digits, . + -");
        }
        settings = Collections.unmodifiableMap(new LinkedHashMap<>(settings));
    }
}
