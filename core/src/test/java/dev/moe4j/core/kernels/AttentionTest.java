package dev.moe4j.core.kernels;

import dev.moe4j.core.PagedRows;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

class AttentionTest {
    /** Attention in float64, straight from the definition, with the same layouts as the kernel. */
    static double[] reference(double[] q, double[] k, double[] v, double[] sinks, int rows, int keys, int queryStart,
                              AttentionSpec spec) {
        int heads = spec.heads(), dq = spec.headDim(), dv = spec.valueHeadDim();
        double[] out = new double[rows * heads * dv];
        for (int t = 0; t < rows; t++) {
            int position = queryStart + t;
            for (int h = 0; h < heads; h++) {
                int g = spec.kvHeadOf(h);
                double[] score = new double[keys];
                double max = sinks == null ? Double.NEGATIVE_INFINITY : sinks[h];
                for (int s = 0; s < keys; s++) {
                    boolean visible = (!spec.causal() || s <= position) && (spec.slidingWindow() == 0 || position - s < spec.slidingWindow());
                    if (!visible) {
                        score[s] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double dot = 0;
                    for (int c = 0; c < dq; c++) {
                        dot += q[(t * heads + h) * dq + c] * k[(s * spec.kvHeads() + g) * dq + c];
                    }
                    score[s] = dot * spec.scale();
                    max = Math.max(max, score[s]);
                }
                double sum = sinks == null ? 0 : Math.exp(sinks[h] - max);
                for (int s = 0; s < keys; s++) {
                    score[s] = Math.exp(score[s] - max);
                    sum += score[s];
                }
                for (int s = 0; s < keys; s++) {
                    for (int c = 0; c < dv; c++) {
                        out[(t * heads + h) * dv + c] += score[s] / sum * v[(s * spec.kvHeads() + g) * dv + c];
                    }
                }
            }
        }
        return out;
    }

    @ParameterizedTest(name = "T={0} S={1} heads={2}/{3} d={4}/{5} window={6} sinks={7} causal={8}")
    @CsvSource({
            "1,1,1,1,1,1,0,false,true",
            "5,5,4,2,8,8,0,false,true",
            "7,7,6,3,17,17,3,false,true",
            "6,6,4,1,16,12,0,true,true",
            "3,9,4,2,33,5,4,true,true",
            "1,13,2,2,64,64,0,false,true",
            // from 16 query rows on, the blocked matrix-product path: several blocks, windows, sinks, offsets
            "70,70,4,2,8,8,0,false,true",
            "20,25,3,1,16,12,9,true,true",
            "80,80,2,1,4,4,40,true,true",
            // bidirectional (an encoder): every query sees every key, on both paths
            "5,5,4,2,8,8,0,false,false",
            "6,6,4,1,16,12,0,true,false",
            "49,49,4,4,16,16,0,false,false",
            "70,70,2,1,8,8,0,true,false",
    })
    void forwardAndBackwardMatchFloat64(int rows, int keys, int heads, int kvHeads, int headDim, int valueDim,
                                        int window, boolean withSinks, boolean causal) {
        var rnd = new Random(rows * 101L + keys * 7L + heads + headDim);
        var causalSpec = new AttentionSpec(heads, kvHeads, headDim, valueDim, (float) (1 / Math.sqrt(headDim)), window);
        var spec = causal ? causalSpec : causalSpec.bidirectional();
        int queryStart = keys - rows;
        Tensor q = RandomTensors.normal(rnd, rows, heads * headDim);
        Tensor k = RandomTensors.normal(rnd, keys, kvHeads * headDim);
        Tensor v = RandomTensors.normal(rnd, keys, kvHeads * valueDim);
        Tensor sinks = withSinks ? RandomTensors.normal(rnd, heads) : null;
        Tensor dOut = RandomTensors.normal(rnd, rows, heads * valueDim);
        double[] qd = Reference.values(q), kd = Reference.values(k), vd = Reference.values(v);
        double[] sd = sinks == null ? null : Reference.values(sinks);

        Tensor out = Tensor.zeros(rows, heads * valueDim);
        float[] lse = new float[rows * heads];
        Attention.forward(out, lse, q, k, v, queryStart, spec, sinks);
        assertClose(reference(qd, kd, vd, sd, rows, keys, queryStart, spec), out, 1e-5, "out");

        Tensor dq = Tensor.zeros(q.shape()), dk = Tensor.zeros(k.shape()), dv = Tensor.zeros(v.shape());
        Tensor dSinks = sinks == null ? null : Tensor.zeros(heads);
        Attention.backward(dq, dk, dv, dSinks, dOut, q, k, v, out, lse, queryStart, spec, sinks);
        double[] dy = Reference.values(dOut);
        double h = 1e-5;
        assertClose(Reference.gradient(x -> reference(x, kd, vd, sd, rows, keys, queryStart, spec), qd, dy, h), dq, 1e-4, "dq");
        assertClose(Reference.gradient(x -> reference(qd, x, vd, sd, rows, keys, queryStart, spec), kd, dy, h), dk, 1e-4, "dk");
        assertClose(Reference.gradient(x -> reference(qd, kd, x, sd, rows, keys, queryStart, spec), vd, dy, h), dv, 1e-4, "dv");
        if (sinks != null) {
            assertClose(Reference.gradient(x -> reference(qd, kd, vd, x, rows, keys, queryStart, spec), sd, dy, h), dSinks, 1e-4, "dSinks");
        }
    }

    @ParameterizedTest
    @CsvSource({"6", "40"})
    void decodingOneTokenAtATimeEqualsAttendingToTheWholeSequence(int rows) {
        var rnd = new Random(3);
        var spec = AttentionSpec.of(4, 2, 8).withSlidingWindow(3);
        Tensor q = RandomTensors.normal(rnd, rows, 32), k = RandomTensors.normal(rnd, rows, 16), v = RandomTensors.normal(rnd, rows, 16);
        Tensor whole = Tensor.zeros(rows, 32);
        Attention.forward(whole, null, q, k, v, 0, spec, null);
        for (int t = 0; t < rows; t++) {
            Tensor one = Tensor.zeros(1, 32);
            Attention.forward(one, null, q.slice(t, t + 1), k.slice(0, t + 1), v.slice(0, t + 1), t, spec, null);
            assertArrayEquals(whole.select(t).toFloatArray(), one.toFloatArray(), 1e-6f);
        }
    }

    @ParameterizedTest(name = "T={0} S={1} window={2}")
    @CsvSource({"1,37,0", "3,37,5", "20,37,0", "24,40,7"})
    void keysAndValuesInPiecesGiveWhatOneMatrixGives(int rows, int keys, int window) {
        var rnd = new Random(rows + keys);
        var spec = AttentionSpec.of(4, 2, 8).withSlidingWindow(window);
        Tensor q = RandomTensors.normal(rnd, rows, 32), k = RandomTensors.normal(rnd, keys, 16), v = RandomTensors.normal(rnd, keys, 16);
        Tensor sinks = RandomTensors.normal(rnd, 4);
        int queryStart = keys - rows;
        Tensor whole = Tensor.zeros(rows, 32);
        Attention.forward(whole, null, q, k, v, queryStart, spec, sinks);
        // the rows of each piece copied elsewhere, as a paged cache's blocks lie
        int[] cuts = {0, 5, 21, 22, keys};
        var kp = new java.util.ArrayList<Tensor>();
        var vp = new java.util.ArrayList<Tensor>();
        for (int i = 0; i + 1 < cuts.length; i++) {
            kp.add(Tensor.of(k.slice(cuts[i], cuts[i + 1]).toFloatArray(), cuts[i + 1] - cuts[i], 16));
            vp.add(Tensor.of(v.slice(cuts[i], cuts[i + 1]).toFloatArray(), cuts[i + 1] - cuts[i], 16));
        }
        Tensor paged = Tensor.zeros(rows, 32);
        Attention.forward(paged, null, q, new PagedRows(kp, keys), new PagedRows(vp, keys), queryStart, spec, sinks);
        assertArrayEquals(whole.toFloatArray(), paged.toFloatArray(), 0f);
    }
}
