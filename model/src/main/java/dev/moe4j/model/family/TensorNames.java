package dev.moe4j.model.family;

import dev.moe4j.model.transformer.ExpertStorage;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How one family's checkpoints name moe4j's weights (see {@code WeightSource} for moe4j's names), both ways:
 * loading maps moe4j's names to the checkpoint's, saving maps them back. Names are matched by templates in which
 * {N} stands for a layer index, {E} for an expert index and {W} for one dot-free part of a name; the first
 * template that matches wins, so specific ones come before general ones.
 *
 * @param experts how the family's checkpoints hold experts
 */
public record TensorNames(List<Rule> rules, ExpertStorage experts) {
    public TensorNames {
        rules = List.copyOf(rules);
    }

    /** One pair of templates: a moe4j name and the checkpoint's name for it. */
    public record Rule(String moe4j, String checkpoint) {
        Optional<String> map(String name, boolean toCheckpoint) {
            Matcher m = pattern(toCheckpoint ? moe4j : checkpoint).matcher(name);
            if (!m.matches()) {
                return Optional.empty();
            }
            String out = toCheckpoint ? checkpoint : moe4j;
            for (String group : List.of("N", "E", "W")) {
                if (out.contains("{" + group + "}")) {
                    out = out.replace("{" + group + "}", m.group(group));
                }
            }
            return Optional.of(out);
        }

        private static final Map<String, Pattern> PATTERNS = new ConcurrentHashMap<>();

        private static Pattern pattern(String template) {
            return PATTERNS.computeIfAbsent(template, Rule::compile);
        }

        private static Pattern compile(String template) {
            String regex = Pattern.quote(template)
                    .replace("{N}", "\\E(?<N>\\d+)\\Q")
                    .replace("{E}", "\\E(?<E>\\d+)\\Q")
                    .replace("{W}", "\\E(?<W>[^.]+)\\Q");
            return Pattern.compile(regex);
        }
    }

    /** The checkpoint's name for a moe4j name. */
    public String toCheckpoint(String name) {
        for (Rule rule : rules) {
            Optional<String> out = rule.map(name, true);
            if (out.isPresent()) {
                return out.get();
            }
        }
        throw new IllegalArgumentException("no checkpoint name for moe4j weight '" + name + "'");
    }

    /** moe4j's name for a checkpoint's tensor, or empty when the tensor is not one of moe4j's weights. */
    public Optional<String> toMoe4j(String checkpointName) {
        for (Rule rule : rules) {
            Optional<String> out = rule.map(checkpointName, false);
            if (out.isPresent()) {
                return out;
            }
        }
        return Optional.empty();
    }

    /** Collects rules: the family's own first, then the names every Llama-style checkpoint shares. */
    static Builder builder(ExpertStorage experts) {
        return new Builder(experts);
    }

    static final class Builder {
        private final ExpertStorage experts;
        private final List<Rule> rules = new ArrayList<>();

        private Builder(ExpertStorage experts) {
            this.experts = experts;
        }

        Builder rule(String moe4j, String checkpoint) {
            rules.add(new Rule(moe4j, checkpoint));
            return this;
        }

        /**
         * The family's rules so far, then: embeddings, final norm, LM head, the layer norms, attention under
         * self_attn (sinks, q/k norms and projections by their own names), and dense MLPs under mlp.
         */
        TensorNames build() {
            rule("embed_tokens.weight", "model.embed_tokens.weight");
            rule("norm.weight", "model.norm.weight");
            rule("lm_head.weight", "lm_head.weight");
            rule("layers.{N}.input_norm.weight", "model.layers.{N}.input_layernorm.weight");
            rule("layers.{N}.post_attention_norm.weight", "model.layers.{N}.post_attention_layernorm.weight");
            rule("layers.{N}.attention.sinks", "model.layers.{N}.self_attn.sinks");
            rule("layers.{N}.attention.{W}.weight", "model.layers.{N}.self_attn.{W}.weight");
            rule("layers.{N}.attention.{W}.bias", "model.layers.{N}.self_attn.{W}.bias");
            rule("layers.{N}.mlp.{W}.weight", "model.layers.{N}.mlp.{W}.weight");
            return new TensorNames(rules, experts);
        }
    }
}
