package dev.moe4j.model.config;

import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Rotary position embedding: the base {@code theta} of the frequencies, how they are rescaled for longer contexts,
 * which pairs of dimensions rotate together, and how much of each head rotates.
 *
 * @param partialRotaryFactor  the fraction of each head's dimensions that rotate (1 for all); for latent attention
 *                             the rotating part is given by the attention's {@code qkRopeHeadDim} instead
 * @param weightDtypeFrequencies the inverse frequencies rounded to the weights' dtype (BF16, F16), as transformers
 *                             computes them when it loads such a checkpoint in that dtype (its frequency buffer is
 *                             cast with the weights). Off by default: frequencies exact in F32, as llama.cpp and
 *                             vLLM compute them; by position 127 of a BF16 model the rounding moves a
 *                             log-probability by up to 0.8. Only comparisons with a transformers run of a BF16/F16
 *                             model turn it on.
 */
public record RopeConfig(double theta, Scaling scaling, Layout layout, double partialRotaryFactor,
                         boolean weightDtypeFrequencies) {
    public RopeConfig {
        if (!(theta > 0)) {
            throw new IllegalArgumentException("rope theta must be positive, got " + theta);
        }
        if (!(partialRotaryFactor > 0 && partialRotaryFactor <= 1)) {
            throw new IllegalArgumentException("partialRotaryFactor must be in (0, 1], got " + partialRotaryFactor);
        }
    }

    /** Unscaled rotary embedding over whole heads in the half layout. */
    public static RopeConfig of(double theta) {
        return new RopeConfig(theta, new None(), Layout.HALF, 1.0, false);
    }

    /** Exact frequencies (what the families map), for a rotary embedding of the given scaling. */
    public RopeConfig(double theta, Scaling scaling, Layout layout, double partialRotaryFactor) {
        this(theta, scaling, layout, partialRotaryFactor, false);
    }

    /** This rotary embedding with frequencies rounded to the weights' dtype as transformers rounds them, or exact. */
    public RopeConfig withWeightDtypeFrequencies(boolean rounded) {
        return new RopeConfig(theta, scaling, layout, partialRotaryFactor, rounded);
    }

    /** Which dimensions form a rotating pair. */
    public enum Layout {
        /** Dimension i pairs with i + d/2 (rotate-half; Llama, Mixtral, Qwen, gpt-oss). */
        HALF,
        /** Dimension 2i pairs with 2i + 1 (DeepSeek's rope_interleave). */
        INTERLEAVED
    }

    /** How frequencies are changed to reach beyond the trained context; the names are transformers' rope types. */
    public sealed interface Scaling {
        /** The transformers rope_type name. */
        String type();
    }

    /** No scaling ({@code "default"}). */
    public record None() implements Scaling {
        @Override
        public String type() {
            return "default";
        }
    }

    /** Positions divided by {@code factor} ({@code "linear"}). */
    public record Linear(double factor) implements Scaling {
        @Override
        public String type() {
            return "linear";
        }
    }

    /** NTK-aware scaling that grows with the sequence length ({@code "dynamic"}). */
    public record Dynamic(double factor, OptionalInt originalMaxPositions) implements Scaling {
        @Override
        public String type() {
            return "dynamic";
        }
    }

    /**
     * YaRN ({@code "yarn"}): frequencies interpolated between {@code betaSlow} and {@code betaFast} rotations, and
     * attention logits scaled; {@code mscale}/{@code mscaleAllDim} (DeepSeek) or {@code attentionFactor} set that
     * scale where present, otherwise transformers derives it from {@code factor}.
     *
     * @param truncate whether the correction range is rounded to whole dimensions (transformers' default: true)
     */
    public record Yarn(double factor, OptionalInt originalMaxPositions, double betaFast, double betaSlow,
                       OptionalDouble mscale, OptionalDouble mscaleAllDim, OptionalDouble attentionFactor,
                       boolean truncate) implements Scaling {
        @Override
        public String type() {
            return "yarn";
        }
    }

    /** Llama 3.1's frequency-band scaling ({@code "llama3"}). */
    public record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions)
            implements Scaling {
        @Override
        public String type() {
            return "llama3";
        }
    }

    /** Per-dimension factors for short and long contexts ({@code "longrope"}). */
    public record LongRope(List<Double> shortFactor, List<Double> longFactor, OptionalInt originalMaxPositions,
                           OptionalDouble attentionFactor) implements Scaling {
        public LongRope {
            shortFactor = List.copyOf(shortFactor);
            longFactor = List.copyOf(longFactor);
        }

        @Override
        public String type() {
            return "longrope";
        }
    }
}
