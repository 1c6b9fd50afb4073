package dev.moe4j.train.experiment;

import dev.moe4j.train.config.TrainSettings;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A sweep of {@code moe4j train} runs that tests one claim of the MoE literature: a base configuration (full
 * budget, and a {@code --quick} one of the same shape but tiny), the variants derived from it, and how many seeds
 * each gets.
 *
 * @param claim    the paper's claim being tested, in a sentence
 * @param base     options of the full-budget runs, over {@code moe4j train}'s defaults
 * @param quick    options that shrink the runs for {@code --quick}, over {@code base}
 * @param variants the variants, derived from the resolved base (so that widths follow the model's size)
 * @param domains  analyse routing per domain of a multi-domain corpus (specialisation)
 */
public record Experiment(String name, String title, String claim, Map<String, String> base,
                         Map<String, String> quick, Function<Base, List<Variant>> variants, boolean domains) {
    public Experiment {
        base = Collections.unmodifiableMap(new LinkedHashMap<>(base));
        quick = Collections.unmodifiableMap(new LinkedHashMap<>(quick));
    }

    /** Every option of the experiment's runs before a variant's changes: defaults, base, then quick's. */
    public Base resolve(boolean quickMode) {
        var values = new LinkedHashMap<String, String>();
        TrainSettings.ALL.forEach(s -> values.put(s.key(), s.defaultValue()));
        values.putAll(base);
        if (quickMode) {
            values.putAll(quick);
        }
        return new Base(values);
    }

    /** The variants of this experiment at the given budget. */
    public List<Variant> variants(boolean quickMode) {
        return variants.apply(resolve(quickMode));
    }

    /** Resolved option values with typed getters, for deriving variants. */
    public record Base(Map<String, String> values) {
        public Base {
            values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
        }

        public int integer(String key) {
            return Integer.parseInt(values.get(key));
        }

        public double number(String key) {
            return Double.parseDouble(values.get(key));
        }

        /** Tokens an MoE layer sees in one training forward pass (batch × context). */
        public int tokensPerForward() {
            return integer("batch") * integer("context");
        }
    }
}
