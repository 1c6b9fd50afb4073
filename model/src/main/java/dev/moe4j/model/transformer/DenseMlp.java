package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.GluParams;

/** The gated MLP of a dense layer (and the layout of every expert): down(act(gate·x) ⊙ up·x). */
final class DenseMlp {
    private final Var gate, up, down;
    private final GluParams glu;

    DenseMlp(int hidden, int intermediate, GluParams glu, String prefix, WeightSource w) {
        this.gate = w.weight(prefix + "gate_proj.weight", intermediate, hidden);
        this.up = w.weight(prefix + "up_proj.weight", intermediate, hidden);
        this.down = w.weight(prefix + "down_proj.weight", hidden, intermediate);
        this.glu = glu;
    }

    Var forward(Graph g, Var x) {
        return g.linear(g.glu(g.linear(x, gate, null), g.linear(x, up, null), glu), down, null);
    }
}
