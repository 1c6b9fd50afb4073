package dev.moe4j.moe.expert;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;

/**
 * Experts stored as two stacked tensors, the layout training creates and transformers keeps in memory:
 * {@code gate_up_proj} [E, 2I, H] (gate rows, then up rows; [E, I, H] for a plain FFN) and {@code down_proj}
 * [E, H, I], with optional biases [E, 2I] and [E, H] (gpt-oss). Expert e's matrices are views
 * ({@code w.select(e)}, {@code .slice(0, I)}), and its gradients are views of the stacked gradients.
 */
public final class StackedExpertWeights implements ExpertWeights {
    private final boolean gated;
    private final int count;
    private final int hidden;
    private final int intermediate;
    private final Parameter gateUp;
    private final Parameter down;
    private final Parameter gateUpBias;
    private final Parameter downBias;

    /**
     * @param prefix     parameter names start with it (e.g. {@code experts.})
     * @param gateUp     [E, 2I, H] for gated FFNs, [E, I, H] for plain ones
     * @param down       [E, H, I]
     * @param gateUpBias [E, 2I] (or [E, I]), or null
     * @param downBias   [E, H], or null
     */
    public StackedExpertWeights(String prefix, boolean gated, Tensor gateUp, Tensor down, Tensor gateUpBias,
                                Tensor downBias) {
        if (down.rank() != 3 || gateUp.rank() != 3) {
            throw new IllegalArgumentException("stacked expert weights are [E, rows, cols], got " + gateUp + ", " + down);
        }
        this.gated = gated;
        this.count = down.dim(0);
        this.hidden = down.dim(1);
        this.intermediate = down.dim(2);
        int inRows = gated ? 2 * intermediate : intermediate;
        require(gateUp.hasShape(count, inRows, hidden), prefix + "gate_up_proj", gateUp, count, inRows, hidden);
        this.gateUp = new Parameter(prefix + "gate_up_proj", gateUp);
        this.down = new Parameter(prefix + "down_proj", down);
        if (gateUpBias != null) {
            require(gateUpBias.hasShape(count, inRows), prefix + "gate_up_proj_bias", gateUpBias, count, inRows);
        }
        if (downBias != null) {
            require(downBias.hasShape(count, hidden), prefix + "down_proj_bias", downBias, count, hidden);
        }
        this.gateUpBias = gateUpBias == null ? null : new Parameter(prefix + "gate_up_proj_bias", gateUpBias);
        this.downBias = downBias == null ? null : new Parameter(prefix + "down_proj_bias", downBias);
    }

    /**
     * Fresh F32 experts for training: input projections N(0, 1/H), down projections N(0, 1/I) (unit-scale
     * activations keep their scale), biases zero.
     */
    public static StackedExpertWeights initialize(String prefix, int experts, int hidden, int intermediate,
                                                  boolean gated, boolean biases, RandomGenerator random) {
        int inRows = gated ? 2 * intermediate : intermediate;
        Tensor gu = gaussian(random, 1 / Math.sqrt(hidden), experts, inRows, hidden);
        Tensor dn = gaussian(random, 1 / Math.sqrt(intermediate), experts, hidden, intermediate);
        return new StackedExpertWeights(prefix, gated, gu, dn, biases ? Tensor.zeros(experts, inRows) : null,
                biases ? Tensor.zeros(experts, hidden) : null);
    }

    static Tensor gaussian(RandomGenerator random, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (random.nextGaussian() * std));
        }
        return t;
    }

    private static void require(boolean ok, String name, Tensor t, int... shape) {
        if (!ok) {
            throw new IllegalArgumentException(name + ": expected " + java.util.Arrays.toString(shape) + ", got " + t);
        }
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public int hidden() {
        return hidden;
    }

    @Override
    public int intermediate() {
        return intermediate;
    }

    @Override
    public Tensor gateUp(int e) {
        return gated ? gateUp.value().select(e) : null;
    }

    @Override
    public Tensor gate(int e) {
        return gated ? gateUp.value().select(e).slice(0, intermediate) : null;
    }

    @Override
    public Tensor up(int e) {
        Tensor w = gateUp.value().select(e);
        return gated ? w.slice(intermediate, 2 * intermediate) : w;
    }

    @Override
    public Tensor down(int e) {
        return down.value().select(e);
    }

    @Override
    public Tensor gateUpBias(int e) {
        return gated && gateUpBias != null ? gateUpBias.value().select(e) : null;
    }

    @Override
    public Tensor upBias(int e) {
        return !gated && gateUpBias != null ? gateUpBias.value().select(e) : null;
    }

    @Override
    public Tensor downBias(int e) {
        return downBias == null ? null : downBias.value().select(e);
    }

    /** The stacked input-side parameter ([E, 2I, H] or [E, I, H]). */
    public Parameter gateUpParameter() {
        return gateUp;
    }

    public Parameter downParameter() {
        return down;
    }

    /** Null when there are no biases. */
    public Parameter gateUpBiasParameter() {
        return gateUpBias;
    }

    public Parameter downBiasParameter() {
        return downBias;
    }

    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>(List.of(gateUp, down));
        if (gateUpBias != null) {
            out.add(gateUpBias);
        }
        if (downBias != null) {
            out.add(downBias);
        }
        return out;
    }
}
