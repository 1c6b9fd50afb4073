package dev.moe4j.moe.expert;

import dev.moe4j.core.Parameter;

import java.util.ArrayList;
import java.util.List;

/**
 * The LoRA adapters of E experts: on the input side either one adapter over the fused gate and up rows
 * ({@code gateUp}, out = 2I; out = I for a plain FFN's input projection), as PEFT puts one on transformers' fused
 * {@code gate_up_proj}, or one on each of {@code gate} and {@code up} (out = I), as PEFT puts them on separate
 * Linear modules; and one on {@code down} (out = H). Any of them may be null.
 */
public record ExpertAdapters(ExpertLora gateUp, ExpertLora gate, ExpertLora up, ExpertLora down) {
    public ExpertAdapters {
        if (gateUp != null && (gate != null || up != null)) {
            throw new IllegalArgumentException("an adapter over the fused gate and up rows excludes adapters on each");
        }
    }

    /** Every adapter matrix, a before b, input side before down. */
    public List<Parameter> parameters() {
        var out = new ArrayList<Parameter>();
        for (ExpertLora l : new ExpertLora[] {gateUp, gate, up, down}) {
            if (l != null) {
                out.add(l.a());
                out.add(l.b());
            }
        }
        return out;
    }

    boolean isEmpty() {
        return gateUp == null && gate == null && up == null && down == null;
    }

    /** Refuses adapters whose shapes do not fit {@code w} computing {@code ffn}. */
    void check(ExpertFfn ffn, ExpertWeights w) {
        int e = w.count(), h = w.hidden(), inter = w.intermediate();
        require(gateUp, "gate_up", e, ffn.gated() ? 2 * inter : inter, h);
        require(gate, "gate", e, inter, h);
        require(up, "up", e, inter, h);
        require(down, "down", e, h, inter);
        if ((gate != null || up != null) && !(ffn instanceof ExpertFfn.Gated g
                && g.glu().layout() == dev.moe4j.core.kernels.GluParams.Layout.HALVES)) {
            throw new IllegalArgumentException("adapters on gate and up apart need a gated FFN with gate rows before up rows");
        }
    }

    private static void require(ExpertLora l, String what, int count, int out, int in) {
        if (l != null && (l.count() != count || l.out() != out || l.in() != in)) {
            throw new IllegalArgumentException("expert " + what + " adapter: expected " + count + " experts of ["
                    + out + ", " + in + "], got a " + l.a().value() + ", b " + l.b().value());
        }
    }
}
