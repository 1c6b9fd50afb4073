package dev.moe4j.core.autograd;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.testing.GradCheck;
import dev.moe4j.core.testing.RandomTensors;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

class GraphTest {
    private final Random rnd = new Random(42);

    private Var param(int... shape) {
        return new Var(RandomTensors.normal(rnd, shape), true);
    }

    @Test
    void linearWithBiasBackpropagatesToInputWeightAndBias() {
        Var x = param(3, 5), w = param(4, 5), b = param(4);
        GradCheck.check(g -> g.linear(x, w, b), List.of(x, w, b), 1);
    }

    @Test
    void elementwiseOpsBackpropagate() {
        Var a = param(2, 7), b = param(2, 7), gate = param(2);
        GradCheck.check(g -> g.mul(a, b), List.of(a, b), 2);
        GradCheck.check(g -> g.scale(a, 3f), List.of(a), 2);
        GradCheck.check(g -> g.sigmoid(a), List.of(a), 2);
        GradCheck.check(g -> g.add(a, b), List.of(a, b), 2);
        // values well away from the clamp's kinks at ±0.8, where finite differences are meaningless
        Var c = new Var(Tensor.of(new float[] {-1.5f, -0.5f, 0.1f, 0.7f, 1.2f, 2f, -0.2f, 0.4f}, 2, 4), true);
        GradCheck.check(g -> g.scaleRows(g.clamp(c, 0.8f), gate), List.of(c, gate), 3);
        GradCheck.check(g -> g.activation(Activation.GELU_TANH, a), List.of(a), 4);
    }

    @Test
    void aValueUsedTwiceReceivesTheSumOfItsGradients() {
        Var a = param(3, 4);
        GradCheck.check(g -> g.add(a, g.mul(a, a)), List.of(a), 5);
    }

    @Test
    void columnSplitsAndConcatenationBackpropagate() {
        Var x = param(3, 9), y = param(3, 2);
        GradCheck.check(g -> g.concatColumns(g.columns(x, 2, 6), y), List.of(x, y), 6);
    }

    @Test
    void viewsShareGradientsWithTheirSource() {
        Var x = param(4, 6);
        GradCheck.check(g -> g.rmsNorm(x.view(8, 3), null, 1e-6f), List.of(x), 7);
    }

    @Test
    void normGluRopeAndEmbeddingBackpropagate() {
        Var x = param(3, 8), w = param(8), gate = param(3, 5), up = param(3, 5), table = param(10, 8);
        GradCheck.check(g -> g.rmsNorm(x, w, 1e-5f), List.of(x, w), 8);
        GradCheck.check(g -> g.glu(gate, up, GluParams.swiglu()), List.of(gate, up), 9);
        var rope = new RopeTable(RopeFrequencies.standard(10000, 4), 16);
        int[] positions = {0, 5, 9};
        GradCheck.check(g -> g.rope(x, positions, rope, RopeLayout.HALF, 4, 4), List.of(x), 10);
        GradCheck.check(g -> g.embedding(table, new int[] {3, 1, 3}), List.of(table), 11);
    }

    @Test
    void attentionOverSeveralSequencesBackpropagatesIncludingSinks() {
        var spec = AttentionSpec.of(4, 2, 3).withSlidingWindow(3);
        Var q = param(8, 12), k = param(8, 6), v = param(8, 6), sinks = param(4);
        GradCheck.check(g -> g.attention(q, k, v, 2, spec, sinks), List.of(q, k, v, sinks), 12);
    }

    @Test
    void bidirectionalAttentionOverSeveralSequencesBackpropagates() {
        var spec = AttentionSpec.of(2, 1, 3).bidirectional();
        Var q = param(8, 6), k = param(8, 3), v = param(8, 3);
        GradCheck.check(g -> g.attention(q, k, v, 2, spec, null), List.of(q, k, v), 13);
    }

    @Test
    void bidirectionalAttentionLetsTheFirstPositionSeeTheLast() {
        var spec = AttentionSpec.of(1, 1, 2);
        Var q = param(3, 2), k = param(3, 2), v = param(3, 2);
        Tensor causal = Graph.inference().attention(q, k, v, 1, spec, null).value();
        Tensor both = Graph.inference().attention(q, k, v, 1, spec.bidirectional(), null).value();
        // Causally the first position sees only itself; bidirectionally it mixes in the later values.
        assertEquals(v.value().get(0, 0), causal.get(0, 0), 1e-6);
        assertNotEquals(causal.get(0, 0), both.get(0, 0), 1e-4);
    }

    @Test
    void rowsAndConcatRowsBackpropagate() {
        Var x = param(5, 3), y = param(2, 3);
        GradCheck.check(g -> g.concatRows(List.of(g.rows(x, 3, 5), y, g.rows(x, 0, 1))), List.of(x, y), 15);
        Tensor joined = Graph.inference().concatRows(List.of(y, Graph.inference().rows(x, 1, 2))).value();
        assertEquals(x.value().get(1, 2), joined.get(2, 2), 0);
    }

    @Test
    void meanOfGroupsAveragesEachRunOfRowsAndBackpropagates() {
        Var x = param(6, 4);
        Tensor mean = Graph.inference().meanOfGroups(x, 2).value();
        for (int c = 0; c < 4; c++) {
            assertEquals((x.value().get(3, c) + x.value().get(4, c) + x.value().get(5, c)) / 3, mean.get(1, c), 1e-6);
        }
        GradCheck.check(g -> g.meanOfGroups(x, 3), List.of(x), 14);
    }

    @Test
    void attentionSequencesDoNotSeeEachOther() {
        var spec = AttentionSpec.of(2, 2, 4);
        Var q = param(6, 8), k = param(6, 8), v = param(6, 8);
        Tensor both = Graph.inference().attention(q, k, v, 2, spec, null).value();
        Tensor second = Graph.inference().attention(
                Var.constant(q.value().slice(3, 6)), Var.constant(k.value().slice(3, 6)), Var.constant(v.value().slice(3, 6)), 1, spec, null).value();
        for (int i = 0; i < 3; i++) {
            for (int c = 0; c < 8; c++) {
                assertEquals(second.get(i, c), both.get(3 + i, c), 1e-6);
            }
        }
    }

    @Test
    void crossEntropyMatchesItsDefinitionAndSkipsIgnoredTargets() {
        Var logits = param(4, 6);
        int[] targets = {2, Graph.IGNORE, 0, 5};
        Tensor l = logits.value();
        double expected = 0;
        for (int i : new int[] {0, 2, 3}) {
            double sum = 0;
            for (int c = 0; c < 6; c++) {
                sum += Math.exp(l.get(i, c));
            }
            expected += Math.log(sum) - l.get(i, targets[i]);
        }
        assertEquals(expected / 3, Graph.inference().crossEntropy(logits, targets).value().getFloat(0), 1e-5);
        GradCheck.check(g -> g.crossEntropy(logits, targets), List.of(logits), 13);
    }

    @Test
    void inferenceGraphsRecordNothing() {
        Graph g = Graph.inference();
        Var x = param(2, 3), w = param(3, 3);
        Var y = g.matmul(x, w);
        assertFalse(y.requiresGrad());
        assertEquals(0, g.tapeLength());
        assertThrows(IllegalArgumentException.class, () -> Graph.training().backward(x));
    }
}
