package dev.moe4j.model.transformer;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.FloatFormats;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.model.config.RopeConfig;

/**
 * The rotary position embedding of a model: its frequencies, computed once as transformers computes them, and a
 * cos/sin table that grows with the longest sequence seen (a long-context model's full table would be tens of
 * megabytes that short prompts never touch).
 */
final class Rotary {
    private final RopeFrequencies frequencies;
    private final RopeLayout layout;
    private final int maxPositions;
    private RopeTable table;

    /**
     * @param rotaryDim    how many elements of each head rotate
     * @param maxPositions the config's max_position_embeddings (the default original context of YaRN)
     * @param dtype        the dtype the config declares for the weights, to which the frequencies are rounded when
     *                     {@link RopeConfig#weightDtypeFrequencies()} asks (the angles are F32 either way)
     */
    Rotary(RopeConfig rope, int rotaryDim, int maxPositions, DType dtype) {
        RopeFrequencies exact = frequencies(rope, rotaryDim, maxPositions);
        this.frequencies = rope.weightDtypeFrequencies() ? rounded(exact, dtype) : exact;
        this.layout = rope.layout() == RopeConfig.Layout.HALF ? RopeLayout.HALF : RopeLayout.INTERLEAVED;
        this.maxPositions = maxPositions;
    }

    private static RopeFrequencies frequencies(RopeConfig rope, int dim, int maxPositions) {
        double theta = rope.theta();
        return switch (rope.scaling()) {
            case RopeConfig.None none -> RopeFrequencies.standard(theta, dim);
            case RopeConfig.Linear l -> RopeFrequencies.linear(theta, dim, l.factor());
            case RopeConfig.Llama3 l -> RopeFrequencies.llama3(theta, dim, l.factor(), l.lowFreqFactor(),
                    l.highFreqFactor(), l.originalMaxPositions());
            // transformers takes the original context from max_position_embeddings when the scaling omits it.
            case RopeConfig.Yarn y -> RopeFrequencies.yarn(theta, dim, new RopeFrequencies.Yarn(y.factor(),
                    y.originalMaxPositions().orElse(maxPositions), y.betaFast(), y.betaSlow(),
                    y.mscale().orElse(0), y.mscaleAllDim().orElse(0), y.attentionFactor().orElse(Double.NaN),
                    y.truncate()));
            case RopeConfig.Dynamic d -> throw unsupported(d);
            case RopeConfig.LongRope l -> throw unsupported(l);
        };
    }

    private static RopeFrequencies rounded(RopeFrequencies f, DType dtype) {
        if (dtype != DType.BF16 && dtype != DType.F16) {
            return f;
        }
        float[] inv = f.invFreq().clone();
        for (int i = 0; i < inv.length; i++) {
            inv[i] = dtype == DType.BF16 ? FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(inv[i]))
                    : FloatFormats.f16ToFloat(FloatFormats.floatToF16(inv[i]));
        }
        return new RopeFrequencies(inv, f.attentionScaling());
    }

    private static BadInputException unsupported(RopeConfig.Scaling scaling) {
        return new BadInputException("rope scaling '" + scaling.type()
                + "' is not supported for inference yet; supported: default, linear, llama3, yarn");
    }

    RopeLayout layout() {
        return layout;
    }

    int rotaryDim() {
        return frequencies.rotaryDim();
    }

    /** A table that covers positions [0, positions); grown by doubling, so growth is rare. */
    synchronized RopeTable table(int positions) {
        if (table == null || table.maxPositions() < positions) {
            int size = Math.max(positions, table == null ? Math.min(maxPositions, 256) : 2 * table.maxPositions());
            table = new RopeTable(frequencies, size);
        }
        return table;
    }
}
