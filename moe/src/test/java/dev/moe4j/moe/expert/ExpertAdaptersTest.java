package dev.moe4j.moe.expert;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.testing.Reference;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.UnaryOperator;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Experts with LoRA adapters against a float64 definition: expert e computes down'(glu(x · gateUp'ᵀ)) with
 * W' = W + scale · b_e · a_e on each adapted projection, for every way experts are held (stacked and trainable or
 * frozen, separate checkpoint tensors, gpt-oss's transposed ones) and every adapter layout (one over the fused
 * gate and up rows, one on each, one on down). The gradients of x and of every adapter matrix match central
 * differences of that float64 forward; frozen weights take none.
 */
class ExpertAdaptersTest {
    static final int E = 3, H = 6, I = 4, R = 2, N = 7;
    static final int[] OFFSETS = {0, 3, 3, 7}; // expert 1 gets no rows
    static final float SCALE = 1.5f;

    private final Random rnd = new Random(11);
    private final Tensor gateUp = gaussian(E, 2 * I, H), down = gaussian(E, H, I), x = gaussian(N, H);
    private final Tensor dOut = gaussian(N, H);

    private Tensor gaussian(int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (rnd.nextGaussian() * 0.5));
        }
        return t;
    }

    private ExpertLora lora(String name, int out, int in) {
        return new ExpertLora(new Parameter(name + ".a", gaussian(E, R, in)), new Parameter(name + ".b",
                gaussian(E, out, R)), SCALE);
    }

    /** The float64 definition over the logical weights [E, 2I, H] and [E, H, I] and the adapters. */
    private double[] reference(GluParams glu, double[] xs, double[] gu, double[] dn, ExpertAdapters ad,
                               List<double[]> adapterValues) {
        double[] out = new double[N * H];
        for (int e = 0; e < E; e++) {
            int from = OFFSETS[e], rows = OFFSETS[e + 1] - from;
            if (rows == 0) {
                continue;
            }
            double[] xe = slice(xs, from * H, rows * H);
            double[] w = slice(gu, e * 2 * I * H, 2 * I * H);
            int k = 0;
            for (ExpertLora l : new ExpertLora[] {ad.gateUp(), ad.gate(), ad.up()}) {
                if (l != null) {
                    int at = l == ad.up() ? I * H : 0;
                    addDelta(w, at, adapterValues.get(k), adapterValues.get(k + 1), e, l.out(), H);
                }
                k += l != null ? 2 : 0;
            }
            double[] act = Reference.glu(glu, Reference.matmulXWt(xe, w, rows, H, 2 * I), rows, I);
            double[] wd = slice(dn, e * H * I, H * I);
            if (ad.down() != null) {
                addDelta(wd, 0, adapterValues.get(k), adapterValues.get(k + 1), e, H, I);
            }
            double[] y = Reference.matmulXWt(act, wd, rows, I, H);
            System.arraycopy(y, 0, out, from * H, rows * H);
        }
        return out;
    }

    /** w[at ..] += scale · b_e · a_e for a [E, R, in], b [E, out, R]. */
    private static void addDelta(double[] w, int at, double[] a, double[] b, int e, int out, int in) {
        double[] ab = Reference.matmul(slice(b, e * out * R, out * R), slice(a, e * R * in, R * in), out, R, in);
        for (int i = 0; i < ab.length; i++) {
            w[at + i] += SCALE * ab[i];
        }
    }

    private static double[] slice(double[] a, int from, int length) {
        double[] out = new double[length];
        System.arraycopy(a, from, out, 0, length);
        return out;
    }

    private void check(String what, GluParams glu, ExpertWeights weights, ExpertAdapters ad) {
        var experts = new Experts(new ExpertFfn.Gated(glu), weights, ad);
        double[] xs = Reference.values(x), gu = Reference.values(gateUp), dn = Reference.values(down);
        List<Parameter> params = ad.parameters();
        var values = new ArrayList<double[]>();
        params.forEach(p -> values.add(Reference.values(p.value())));

        Experts.Trace trace = experts.forward(x, OFFSETS);
        assertClose(reference(glu, xs, gu, dn, ad, values), trace.output(), 1e-5, what + ": output");
        Tensor dx = experts.backward(trace, dOut);

        double[] dy = Reference.values(dOut);
        double h = 1e-6;
        assertClose(Reference.gradient(p -> reference(glu, p, gu, dn, ad, values), xs, dy, h), dx, 1e-5,
                what + ": dx");
        for (int i = 0; i < params.size(); i++) {
            int at = i;
            UnaryOperator<double[]> f = p -> {
                var changed = new ArrayList<>(values);
                changed.set(at, p);
                return reference(glu, xs, gu, dn, ad, changed);
            };
            assertClose(Reference.gradient(f, values.get(i), dy, h), params.get(i).grad(), 1e-5,
                    what + ": d" + params.get(i).name());
        }
    }

    @Test
    void stackedFrozenExpertsWithAnAdapterOverFusedGateAndUpAndOneOnDown() {
        var stacked = new StackedExpertWeights("experts.", true, gateUp, down, null, null);
        stacked.parameters().forEach(Parameter::freeze);
        check("stacked", GluParams.swiglu(), stacked, new ExpertAdapters(lora("gu", 2 * I, H), null, null,
                lora("down", H, I)));
        assertFalse(stacked.gateUpParameter().hasGrad() || stacked.downParameter().hasGrad(),
                "frozen experts take no gradient");
    }

    @Test
    void separateCheckpointExpertsWithTheFusedAdapterSplitOverGateAndUp() {
        check("separate, fused adapter", GluParams.swiglu(), separate(), new ExpertAdapters(lora("gu", 2 * I, H),
                null, null, lora("down", H, I)));
    }

    @Test
    void separateExpertsWithAnAdapterOnEachOfGateUpAndDown() {
        check("separate, gate and up adapters", GluParams.swiglu(), separate(), new ExpertAdapters(null,
                lora("gate", I, H), lora("up", I, H), lora("down", H, I)));
    }

    @Test
    void stackedExpertsWithAdaptersOnGateAndUpApartAddIntoTheirHalvesOfTheFusedRows() {
        var stacked = new StackedExpertWeights("experts.", true, gateUp, down, null, null);
        stacked.parameters().forEach(Parameter::freeze);
        check("stacked, gate and up adapters", GluParams.swiglu(), stacked, new ExpertAdapters(null,
                lora("gate", I, H), lora("up", I, H), null));
    }

    @Test
    void transposedExpertsOfGptOssWithInterleavedGateAndUp() {
        var glu = new GluParams.Clamped(1.702f, 7f, GluParams.Layout.INTERLEAVED);
        check("transposed", glu, new TransposedExpertWeights(transpose(gateUp), transpose(down), null, null),
                new ExpertAdapters(lora("gu", 2 * I, H), null, null, lora("down", H, I)));
    }

    @Test
    void trainableStackedExpertsKeepTheirOwnGradientBesideTheAdapters() {
        var stacked = new StackedExpertWeights("experts.", true, gateUp, down, null, null);
        var experts = new Experts(ExpertFfn.swiglu(), stacked, new ExpertAdapters(null, null, null,
                lora("down", H, I)));
        experts.backward(experts.forward(x, OFFSETS), dOut);
        // dW_down = dyᵀ · act per expert; expert 0's rows are 0..3.
        var plain = new Experts(ExpertFfn.swiglu(), new StackedExpertWeights("experts.", true, gateUp, down, null,
                null));
        Experts.Trace t = plain.forward(x, OFFSETS);
        double[] dy0 = slice(Reference.values(dOut), 0, 3 * H), act0 = slice(Reference.values(t.activated()), 0, 3 * I);
        double[] expected = Reference.matmul(Reference.transpose(dy0, 3, H), act0, H, 3, I);
        assertClose(expected, stacked.downParameter().grad().select(0), 1e-5, "dW_down of expert 0");
    }

    @Test
    void adaptersThatDoNotFitTheExpertsAreRefused() {
        var stacked = new StackedExpertWeights("experts.", true, gateUp, down, null, null);
        assertThrows(IllegalArgumentException.class, () -> new Experts(ExpertFfn.swiglu(), stacked,
                new ExpertAdapters(lora("gu", I, H), null, null, null)));
        assertThrows(IllegalArgumentException.class, () -> new ExpertAdapters(lora("gu", 2 * I, H),
                lora("gate", I, H), null, null));
    }

    private SeparateExpertWeights separate() {
        var gates = new ArrayList<Tensor>();
        var ups = new ArrayList<Tensor>();
        var downs = new ArrayList<Tensor>();
        for (int e = 0; e < E; e++) {
            gates.add(gateUp.select(e).slice(0, I));
            ups.add(gateUp.select(e).slice(I, 2 * I));
            downs.add(down.select(e));
        }
        return new SeparateExpertWeights(gates, ups, downs);
    }

    private static Tensor transpose(Tensor t) {
        int e = t.dim(0), rows = t.dim(1), cols = t.dim(2);
        Tensor out = Tensor.zeros(e, cols, rows);
        for (int x = 0; x < e; x++) {
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    out.set(t.get(x, r, c), x, c, r);
                }
            }
        }
        return out;
    }
}
