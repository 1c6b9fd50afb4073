package dev.moe4j.moe.expert;

import dev.moe4j.core.Tensor;

/**
 * Stacked experts stored [in, out], as gpt-oss checkpoints hold them: {@code gate_up_proj} [E, H, 2I] (gate and
 * up columns interleaved, as {@code GluParams.Layout.INTERLEAVED} reads them), {@code down_proj} [E, I, H], and
 * biases [E, 2I] and [E, H]. Used in place, typically memory-mapped BF16: transposing would copy every expert to
 * the heap. Inference only.
 */
public final class TransposedExpertWeights implements ExpertWeights {
    private final Tensor gateUp;
    private final Tensor down;
    private final Tensor gateUpBias;
    private final Tensor downBias;

    /**
     * @param gateUp     [E, H, 2I]
     * @param down       [E, I, H]
     * @param gateUpBias [E, 2I], or null
     * @param downBias   [E, H], or null
     */
    public TransposedExpertWeights(Tensor gateUp, Tensor down, Tensor gateUpBias, Tensor downBias) {
        if (gateUp.rank() != 3 || down.rank() != 3) {
            throw new IllegalArgumentException("transposed expert weights are [E, in, out], got " + gateUp + ", " + down);
        }
        int e = down.dim(0), inter = down.dim(1), hidden = down.dim(2);
        if (!gateUp.hasShape(e, hidden, 2 * inter)) {
            throw new IllegalArgumentException("gate_up_proj: expected [" + e + ", " + hidden + ", " + 2 * inter
                    + "], got " + gateUp);
        }
        if (gateUpBias != null && !gateUpBias.hasShape(e, 2 * inter)) {
            throw new IllegalArgumentException("gate_up_proj_bias: expected [" + e + ", " + 2 * inter + "], got " + gateUpBias);
        }
        if (downBias != null && !downBias.hasShape(e, hidden)) {
            throw new IllegalArgumentException("down_proj_bias: expected [" + e + ", " + hidden + "], got " + downBias);
        }
        this.gateUp = gateUp;
        this.down = down;
        this.gateUpBias = gateUpBias;
        this.downBias = downBias;
    }

    @Override
    public boolean transposed() {
        return true;
    }

    @Override
    public int count() {
        return down.dim(0);
    }

    @Override
    public int hidden() {
        return down.dim(2);
    }

    @Override
    public int intermediate() {
        return down.dim(1);
    }

    /** [H, 2I] expert e's gate and up columns. */
    @Override
    public Tensor gateUp(int e) {
        return gateUp.select(e);
    }

    @Override
    public Tensor gate(int e) {
        return null;
    }

    @Override
    public Tensor up(int e) {
        return null;
    }

    /** [I, H] expert e's down projection. */
    @Override
    public Tensor down(int e) {
        return down.select(e);
    }

    @Override
    public Tensor gateUpBias(int e) {
        return gateUpBias == null ? null : gateUpBias.select(e);
    }

    @Override
    public Tensor downBias(int e) {
        return downBias == null ? null : downBias.select(e);
    }
}
