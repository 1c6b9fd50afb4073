package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.model.config.RopeConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Reads and writes the rotary-embedding fields of a config.json, in both of the forms transformers uses:
 * <ul>
 *   <li>older (4.x, and every published checkpoint): {@code rope_theta} plus {@code rope_scaling}, an object with
 *       {@code type} or {@code rope_type} and the scaling parameters, or null for none;</li>
 *   <li>newer (5.x): {@code rope_parameters}, one object holding {@code rope_theta}, {@code rope_type} and the
 *       parameters.</li>
 * </ul>
 * When both are present {@code rope_parameters} wins, as in transformers 5, except that a {@code rope_scaling}
 * object still supplies the scaling when {@code rope_parameters} has none.
 */
final class HfRope {
    private HfRope() {
    }

    /**
     * @param defaultTheta   the family's theta when the config gives none (transformers' default_theta: 10000
     *                       unless the family sets another)
     * @param defaultScaling the family's scaling when the config gives none (gpt-oss defaults to YaRN)
     */
    static RopeConfig read(ConfigFields c, double defaultTheta, RopeConfig.Scaling defaultScaling,
                           RopeConfig.Layout layout) {
        var parameters = c.object("rope_parameters");
        var scalingObject = c.object("rope_scaling");
        double theta = c.doubleOr("rope_theta", defaultTheta);
        RopeConfig.Scaling scaling = defaultScaling;
        double partial = c.doubleOr("partial_rotary_factor", 1.0);
        if (parameters.isPresent()) {
            ConfigFields p = parameters.get();
            theta = p.doubleOr("rope_theta", theta);
            partial = p.doubleOr("partial_rotary_factor", partial);
            if (p.hasValue("rope_type") || p.hasValue("type")) {
                scaling = scaling(p, c);
            } else if (scalingObject.isPresent()) {
                scaling = scaling(scalingObject.get(), c);
            }
        } else if (scalingObject.isPresent()) {
            scaling = scaling(scalingObject.get(), c);
        } else if (c.has("rope_scaling")) {
            scaling = new RopeConfig.None(); // an explicit null: no scaling, whatever the family's default
        }
        if (!(theta > 0)) {
            throw c.error("rope_theta", "must be positive, got " + theta);
        }
        if (!(partial > 0 && partial <= 1)) {
            throw c.error("partial_rotary_factor", "must be in (0, 1], got " + partial);
        }
        return new RopeConfig(theta, scaling, layout, partial);
    }

    private static RopeConfig.Scaling scaling(ConfigFields p, ConfigFields top) {
        String typeField = p.hasValue("rope_type") ? "rope_type" : "type";
        String type = p.stringOr(typeField, "default");
        return switch (type) {
            case "default" -> new RopeConfig.None();
            case "linear" -> new RopeConfig.Linear(factor(p));
            case "dynamic" -> new RopeConfig.Dynamic(factor(p), p.optionalInt("original_max_position_embeddings",
                    OptionalInt.empty()));
            case "yarn" -> new RopeConfig.Yarn(factor(p),
                    p.optionalInt("original_max_position_embeddings", OptionalInt.empty()),
                    p.doubleOr("beta_fast", 32.0), p.doubleOr("beta_slow", 1.0),
                    p.optionalDouble("mscale", OptionalDouble.empty()),
                    p.optionalDouble("mscale_all_dim", OptionalDouble.empty()),
                    p.optionalDouble("attention_factor", OptionalDouble.empty()),
                    p.boolOr("truncate", true));
            case "llama3" -> new RopeConfig.Llama3(factor(p), p.doubleOr("low_freq_factor", 1.0),
                    p.doubleOr("high_freq_factor", 4.0), p.requiredPositiveInt("original_max_position_embeddings"));
            case "longrope", "su" -> new RopeConfig.LongRope(doubles(p, "short_factor"), doubles(p, "long_factor"),
                    p.optionalInt("original_max_position_embeddings", OptionalInt.empty()),
                    p.optionalDouble("attention_factor", OptionalDouble.empty()));
            default -> throw p.error(typeField, "'" + type
                    + "' is not a supported rope type; supported: default, linear, dynamic, yarn, llama3, longrope");
        };
    }

    private static double factor(ConfigFields p) {
        if (!p.hasValue("factor")) {
            throw new BadInputException(p.source() + ": missing required field '" + p.qualified("factor") + "'");
        }
        double factor = p.doubleOr("factor", 1.0);
        if (!(factor > 0)) {
            throw p.error("factor", "must be positive, got " + factor);
        }
        return factor;
    }

    private static List<Double> doubles(ConfigFields p, String name) {
        if (!p.hasValue(name) || !p.json().get(name).isArray()) {
            throw p.error(name, "must be a list of numbers");
        }
        var out = new ArrayList<Double>();
        for (var item : p.json().get(name)) {
            if (!item.isNumber()) {
                throw p.error(name, "must be a list of numbers, got " + p.json().get(name));
            }
            out.add(item.asDouble());
        }
        return out;
    }

    /**
     * Writes the older form ({@code rope_theta}, {@code rope_scaling}), which transformers 4 and 5, vLLM and the
     * llama.cpp converters all read.
     */
    static void write(RopeConfig rope, ObjectNode out) {
        out.put("rope_theta", rope.theta());
        if (rope.partialRotaryFactor() != 1.0) {
            out.put("partial_rotary_factor", rope.partialRotaryFactor());
        }
        if (rope.scaling() instanceof RopeConfig.None) {
            out.putNull("rope_scaling");
            return;
        }
        ObjectNode s = out.putObject("rope_scaling");
        s.put("rope_type", rope.scaling().type());
        switch (rope.scaling()) {
            case RopeConfig.None none -> {
            }
            case RopeConfig.Linear l -> s.put("factor", l.factor());
            case RopeConfig.Dynamic d -> {
                s.put("factor", d.factor());
                d.originalMaxPositions().ifPresent(v -> s.put("original_max_position_embeddings", v));
            }
            case RopeConfig.Yarn y -> {
                s.put("factor", y.factor());
                y.originalMaxPositions().ifPresent(v -> s.put("original_max_position_embeddings", v));
                s.put("beta_fast", y.betaFast());
                s.put("beta_slow", y.betaSlow());
                y.mscale().ifPresent(v -> s.put("mscale", v));
                y.mscaleAllDim().ifPresent(v -> s.put("mscale_all_dim", v));
                y.attentionFactor().ifPresent(v -> s.put("attention_factor", v));
                s.put("truncate", y.truncate());
            }
            case RopeConfig.Llama3 l -> {
                s.put("factor", l.factor());
                s.put("low_freq_factor", l.lowFreqFactor());
                s.put("high_freq_factor", l.highFreqFactor());
                s.put("original_max_position_embeddings", l.originalMaxPositions());
            }
            case RopeConfig.LongRope l -> {
                l.shortFactor().forEach(s.putArray("short_factor")::add);
                l.longFactor().forEach(s.putArray("long_factor")::add);
                l.originalMaxPositions().ifPresent(v -> s.put("original_max_position_embeddings", v));
                l.attentionFactor().ifPresent(v -> s.put("attention_factor", v));
            }
        }
    }
}
