package dev.moe4j.moe.expert;

import dev.moe4j.core.Tensor;

import java.util.List;

/**
 * Experts as a checkpoint stores them, one tensor per projection per expert (Mixtral's w1/w3/w2, Qwen's and
 * DeepSeek's gate_proj/up_proj/down_proj). The tensors are typically BF16 views into a memory-mapped file; they
 * are used in place, never copied, and a forward pass reads only the experts that received tokens. Inference only:
 * training keeps {@link StackedExpertWeights}.
 */
public final class SeparateExpertWeights implements ExpertWeights {
    private final List<Tensor> gate;
    private final List<Tensor> up;
    private final List<Tensor> down;
    private final List<Tensor> gateBias;
    private final List<Tensor> upBias;
    private final List<Tensor> downBias;

    /**
     * @param gate [I, H] per expert, or null for a plain FFN
     * @param up   [I, H] per expert (the input projection of a plain FFN)
     * @param down [H, I] per expert
     */
    public SeparateExpertWeights(List<Tensor> gate, List<Tensor> up, List<Tensor> down) {
        this(gate, up, down, null, null, null);
    }

    /** With per-expert biases; any of the bias lists may be null. */
    public SeparateExpertWeights(List<Tensor> gate, List<Tensor> up, List<Tensor> down, List<Tensor> gateBias,
                                 List<Tensor> upBias, List<Tensor> downBias) {
        int e = down.size();
        if (up.size() != e || (gate != null && gate.size() != e)) {
            throw new IllegalArgumentException("expert projections: " + (gate == null ? "-" : gate.size()) + " gate, "
                    + up.size() + " up, " + e + " down");
        }
        Tensor d0 = down.get(0);
        for (int i = 0; i < e; i++) {
            check("up[" + i + "]", up.get(i), d0.dim(1), d0.dim(0));
            check("down[" + i + "]", down.get(i), d0.dim(0), d0.dim(1));
            if (gate != null) {
                check("gate[" + i + "]", gate.get(i), d0.dim(1), d0.dim(0));
            }
        }
        this.gate = gate == null ? null : List.copyOf(gate);
        this.up = List.copyOf(up);
        this.down = List.copyOf(down);
        this.gateBias = gateBias == null ? null : List.copyOf(gateBias);
        this.upBias = upBias == null ? null : List.copyOf(upBias);
        this.downBias = downBias == null ? null : List.copyOf(downBias);
    }

    private static void check(String name, Tensor t, int rows, int cols) {
        if (!t.hasShape(rows, cols)) {
            throw new IllegalArgumentException("expert " + name + ": expected [" + rows + ", " + cols + "], got " + t);
        }
    }

    @Override
    public int count() {
        return down.size();
    }

    @Override
    public int hidden() {
        return down.get(0).dim(0);
    }

    @Override
    public int intermediate() {
        return down.get(0).dim(1);
    }

    @Override
    public Tensor gateUp(int e) {
        return null;
    }

    @Override
    public Tensor gate(int e) {
        return gate == null ? null : gate.get(e);
    }

    @Override
    public Tensor up(int e) {
        return up.get(e);
    }

    @Override
    public Tensor down(int e) {
        return down.get(e);
    }

    @Override
    public Tensor gateBias(int e) {
        return gateBias == null ? null : gateBias.get(e);
    }

    @Override
    public Tensor upBias(int e) {
        return upBias == null ? null : upBias.get(e);
    }

    @Override
    public Tensor downBias(int e) {
        return downBias == null ? null : downBias.get(e);
    }
}
