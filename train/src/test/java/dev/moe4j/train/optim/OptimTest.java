package dev.moe4j.train.optim;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class OptimTest {
    @Test
    void adamWFollowsPyTorchsUpdateOverSeveralStepsAndDecaysOnlyWhatItIsTold() {
        var rnd = new Random(1);
        Parameter matrix = new Parameter("w", RandomTensors.normal(rnd, 3, 5));
        Parameter vector = new Parameter("b", RandomTensors.normal(rnd, 5));
        var hyper = new AdamW.Hyper(0.9, 0.95, 1e-8, 0.1);
        var adam = new AdamW(List.of(matrix, vector), hyper, AdamW.MATRICES_ONLY);

        double[][] w = {Reference.values(matrix.value()), Reference.values(vector.value())};
        double[][] m = {new double[15], new double[5]}, v = {new double[15], new double[5]};
        double[] lrs = {1e-2, 5e-3, 2e-2, 1e-3};
        for (int t = 1; t <= lrs.length; t++) {
            Tensor gm = RandomTensors.normal(rnd, 3, 5), gv = RandomTensors.normal(rnd, 5);
            matrix.grad().copyFrom(gm);
            vector.grad().copyFrom(gv);
            double[][] g = {Reference.values(gm), Reference.values(gv)};
            adam.step(lrs[t - 1]);
            for (int p = 0; p < 2; p++) {
                double decay = p == 0 ? hyper.weightDecay() : 0;
                for (int i = 0; i < w[p].length; i++) {
                    w[p][i] *= 1 - lrs[t - 1] * decay;
                    m[p][i] = 0.9 * m[p][i] + 0.1 * g[p][i];
                    v[p][i] = 0.95 * v[p][i] + 0.05 * g[p][i] * g[p][i];
                    double mHat = m[p][i] / (1 - Math.pow(0.9, t));
                    double denom = Math.sqrt(v[p][i]) / Math.sqrt(1 - Math.pow(0.95, t)) + 1e-8;
                    w[p][i] -= lrs[t - 1] * mHat / denom;
                }
            }
        }
        assertClose(w[0], matrix.value(), 1e-6, "decayed matrix");
        assertClose(w[1], vector.value(), 1e-6, "undecayed vector");
        assertEquals(4, adam.steps());
    }

    @Test
    void restoredStateContinuesExactlyLikeTheOriginal() {
        var rnd = new Random(2);
        Tensor start = RandomTensors.normal(rnd, 4, 4);
        Tensor[] grads = {RandomTensors.normal(rnd, 4, 4), RandomTensors.normal(rnd, 4, 4), RandomTensors.normal(rnd, 4, 4)};
        Parameter a = new Parameter("w", start.copy());
        var adamA = new AdamW(List.of(a), AdamW.Hyper.pytorchDefaults(), AdamW.ALL);
        for (Tensor g : grads) {
            a.grad().copyFrom(g);
            adamA.step(1e-2);
        }
        Parameter b = new Parameter("w", start.copy());
        var adamB = new AdamW(List.of(b), AdamW.Hyper.pytorchDefaults(), AdamW.ALL);
        b.grad().copyFrom(grads[0]);
        adamB.step(1e-2);
        Parameter c = new Parameter("w", b.value().copy());
        var adamC = new AdamW(List.of(c), AdamW.Hyper.pytorchDefaults(), AdamW.ALL);
        adamC.restore(adamB.state(), adamB.steps());
        for (int i = 1; i < grads.length; i++) {
            c.grad().copyFrom(grads[i]);
            adamC.step(1e-2);
        }
        assertClose(Reference.values(a.value()), c.value(), 0, "resumed");
    }

    @Test
    void clippingScalesToTheMaximumNormAndReportsTheNormBefore() {
        Parameter p = new Parameter("w", Tensor.zeros(2)), q = new Parameter("b", Tensor.zeros(1));
        p.grad().copyFrom(Tensor.vector(3, 0));
        q.grad().copyFrom(Tensor.vector(4));
        assertEquals(5.0, GradientClipping.clip(List.of(p, q), 1.0), 1e-6);
        assertEquals(1.0, GradientClipping.globalNorm(List.of(p, q)), 1e-5);
        assertEquals(0.6, p.grad().getFloat(0), 1e-6);
        assertEquals(1.0, GradientClipping.clip(List.of(p, q), 10.0), 1e-5); // below the maximum: untouched
        assertEquals(0.6, p.grad().getFloat(0), 1e-6);
    }

    @Test
    void scheduleWarmsUpLinearlyThenDecaysByCosineToItsFloor() {
        var s = LearningRateSchedule.warmupCosine(1e-3, 10, 110);
        assertEquals(1e-4, s.at(0), 1e-12);
        assertEquals(1e-3, s.at(9), 1e-12);
        assertEquals(1e-3, s.at(10), 1e-12);
        assertEquals(0.55e-3, s.at(60), 1e-12); // halfway through the decay: midway between peak and floor
        assertEquals(1e-4, s.at(110), 1e-12);
        assertEquals(1e-4, s.at(500), 1e-12);
        assertFalse(LearningRateSchedule.constant(3e-4).at(1000) != 3e-4);
    }
}
