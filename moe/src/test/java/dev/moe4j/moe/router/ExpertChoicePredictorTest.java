package dev.moe4j.moe.router;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.stats.PredictorConfusion;
import dev.moe4j.moe.testing.FiniteDifferences;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The expert-choice predictor: its loss and gradient, its place in the router, and routing by it. */
class ExpertChoicePredictorTest {
    private static final int H = 10;
    private static final int E = 6;
    private static final int N = 12;

    @ParameterizedTest(name = "width {0}, stop gradient {1}")
    @CsvSource({"5, true", "5, false", "0, true", "0, false"})
    void lossAndGradientsMatchFiniteDifferencesOfTheFloat64Reference(int width, boolean stop) {
        var options = new PredictorOptions(width, stop, 0, 0.7);
        var random = new Random(width * 31L + (stop ? 1 : 0));
        var predictor = ExpertChoicePredictor.initialize(options, H, E, new SplittableRandom(2));
        for (Parameter p : predictor.parameters()) {
            if (p.name().endsWith("bias")) {
                fill(p.value(), random, 0.3);
            }
        }
        Tensor x = FiniteDifferences.gaussian(random, 1.0, N, H);
        boolean[] selected = new boolean[N * E];
        for (int i = 0; i < selected.length; i++) {
            selected[i] = random.nextInt(3) == 0;
        }
        var fit = predictor.fit(predictor.forward(x), selected);
        Tensor dx = Tensor.zeros(N, H);
        predictor.backward(fit, x, dx);

        Map<String, double[]> params = new HashMap<>();
        for (Parameter p : predictor.parameters()) {
            params.put(p.name(), FiniteDifferences.toDouble(p.value()));
        }
        double[] xd = FiniteDifferences.toDouble(x);
        double reference = referenceLoss(params, xd, selected, width);
        assertEquals(reference, fit.loss(), 1e-5 * reference);
        java.util.function.DoubleSupplier objective = () -> options.coefficient()
                * referenceLoss(params, xd, selected, width);
        for (Parameter p : predictor.parameters()) {
            FiniteDifferences.check(p.name(), params.get(p.name()), p.grad(), objective, 40, random);
        }
        if (stop) {
            assertArrayEquals(new float[N * H], dx.toFloatArray(), "the gradient stops at the router's input");
        } else {
            FiniteDifferences.check("dx", xd, dx, objective, 40, random);
        }
    }

    /** Mean binary cross-entropy of σ(MLP(x)) against the selections, in float64. */
    private static double referenceLoss(Map<String, double[]> p, double[] x, boolean[] selected, int width) {
        double[] in = x;
        int inWidth = H;
        if (width > 0) {
            double[] w = p.get(ExpertChoicePredictor.HIDDEN_WEIGHT), b = p.get(ExpertChoicePredictor.HIDDEN_BIAS);
            in = new double[N * width];
            for (int t = 0; t < N; t++) {
                for (int j = 0; j < width; j++) {
                    double z = b[j];
                    for (int k = 0; k < H; k++) {
                        z += x[t * H + k] * w[j * H + k];
                    }
                    in[t * width + j] = z / (1 + Math.exp(-z));
                }
            }
            inWidth = width;
        }
        double[] w = p.get(ExpertChoicePredictor.OUT_WEIGHT), b = p.get(ExpertChoicePredictor.OUT_BIAS);
        double loss = 0;
        for (int t = 0; t < N; t++) {
            for (int i = 0; i < E; i++) {
                double z = b[i];
                for (int k = 0; k < inWidth; k++) {
                    z += in[t * inWidth + k] * w[i * inWidth + k];
                }
                double probability = 1 / (1 + Math.exp(-z));
                loss -= selected[t * E + i] ? Math.log(probability) : Math.log(1 - probability);
            }
        }
        return loss / (N * E);
    }

    private static MoeConfig expertChoice(ExpertChoiceDecode decode, PredictorOptions predictor, long seed) {
        return MoeConfig.builder(H, 4, E, 1).router(RouterKind.EXPERT_CHOICE)
                .capacity(Capacity.factor(2.0, Capacity.Rounding.CEIL, 1)).expertChoiceDecode(decode)
                .predictor(predictor).seed(seed).build();
    }

    @Test
    void theRoutersTrainingPassTrainsThePredictorOnTheBatchSelectionsAndNothingElseThroughIt() {
        MoeConfig c = expertChoice(ExpertChoiceDecode.PREDICTOR, new PredictorOptions(5, true, 0, 0.5), 3);
        var router = (ExpertChoiceRouter) Routers.initialize(c, new SplittableRandom(4));
        Tensor x = FiniteDifferences.gaussian(new Random(5), 1.0, N, H);
        Routing r = router.route(x, Mode.TRAINING, new SplittableRandom(6));
        boolean[] selected = selections(r.dispatch(), E);
        var fit = r.predictorFit();
        assertNotNull(fit);
        assertArrayEquals(selected, fit.selected());

        Tensor dx = Tensor.zeros(N, H);
        router.backward(r, x, new RouterGrads(N, E), dx);
        var alone = ExpertChoicePredictor.initialize(c.predictor().orElseThrow(), H, E,
                new SplittableRandom(c.seed() ^ 0x2545F4914F6CDD1DL));
        alone.backward(alone.fit(alone.forward(x), selected), x, Tensor.zeros(N, H));
        for (int i = 0; i < alone.parameters().size(); i++) {
            assertArrayEquals(alone.parameters().get(i).grad().toFloatArray(),
                    router.predictor().parameters().get(i).grad().toFloatArray(), 0f, alone.parameters().get(i).name());
        }
        assertArrayEquals(new float[E * H], router.parameters().getFirst().grad().toFloatArray(),
                "the predictor's loss does not reach the router's weight");
        assertArrayEquals(new float[N * H], dx.toFloatArray());
        assertNull(router.route(x, Mode.INFERENCE, null).predictorFit(), "inference trains nothing");
    }

    @Test
    void predictedChoicesAreThoseOfProbabilityAtLeastHalfOrTheTopK() {
        float[] logits = {2f, -1f, 0f, -0.5f, /* */ -3f, -2f, -1f, -4f};
        var half = ExpertChoicePredictor.initialize(new PredictorOptions(0, true, 0, 1), 3, 4, new SplittableRandom(1));
        assertArrayEquals(new boolean[] {true, false, true, false, false, false, false, false}, half.choose(logits));
        var top2 = ExpertChoicePredictor.initialize(new PredictorOptions(0, true, 2, 1), 3, 4, new SplittableRandom(1));
        assertArrayEquals(new boolean[] {true, false, true, false, false, true, true, false}, top2.choose(logits));
        var counts = PredictorConfusion.of(new boolean[] {true, true, false, false}, new boolean[] {true, false, true, false});
        assertEquals(0.5, counts.accuracy());
        assertEquals(0.5, counts.precision());
        assertEquals(0.5, counts.recall());
    }

    @Test
    void aPredictorIsOnlyForExpertChoiceAndPredictorDecodingNeedsOne() {
        assertThrows(dev.moe4j.core.BadInputException.class, () -> MoeConfig.builder(H, 4, E, 2)
                .predictor(PredictorOptions.defaults()).build());
        assertThrows(dev.moe4j.core.BadInputException.class,
                () -> expertChoice(ExpertChoiceDecode.PREDICTOR, null, 1));
        assertThrows(dev.moe4j.core.BadInputException.class,
                () -> expertChoice(ExpertChoiceDecode.PREDICTOR, new PredictorOptions(8, true, E + 1, 1), 1));
    }

    /**
     * Two expert-choice layers (with a residual between) whose linear probes are set to reproduce exactly the batch's
     * selections of a sequence, by least squares on its own inputs: fed one token at a time, the predictor path routes
     * every token as the batch did and gives the batch's outputs. A predictor that learned the selections perfectly
     * closes the causal gap entirely; what the experiments measure is how far a trained one gets.
     */
    @Test
    void aPerfectPredictorRoutesTokenByTokenExactlyAsTheBatchWould() {
        var probe = new PredictorOptions(0, true, 0, 1);
        MoeLayer[] batch = new MoeLayer[2], causal = new MoeLayer[2];
        for (int l = 0; l < 2; l++) {
            batch[l] = MoeLayer.initialize(expertChoice(ExpertChoiceDecode.BATCH_TOP_C, probe, 10 + l));
            causal[l] = MoeLayer.initialize(expertChoice(ExpertChoiceDecode.PREDICTOR, probe, 10 + l));
        }
        int n = 9;
        Tensor x = FiniteDifferences.gaussian(new Random(12), 1.0, n, H);
        Tensor in = x;
        boolean[][] selected = new boolean[2][];
        for (int l = 0; l < 2; l++) {
            MoeResult r = batch[l].forward(in, Mode.INFERENCE);
            selected[l] = selections(r.routing().dispatch(), E);
            fitExactly(((ExpertChoiceRouter) causal[l].router()).predictor(), in, selected[l]);
            in = plus(in, r.output());
        }
        float[] whole = in.toFloatArray();
        for (int t = 0; t < n; t++) {
            Tensor token = x.slice(t, t + 1);
            for (int l = 0; l < 2; l++) {
                MoeResult r = causal[l].forward(token, Mode.INFERENCE);
                assertArrayEquals(Arrays.copyOfRange(selected[l], t * E, t * E + E),
                        selections(r.routing().dispatch(), E), "layer " + l + ", token " + t);
                token = plus(token, r.output());
            }
            assertArrayEquals(Arrays.copyOfRange(whole, t * H, t * H + H), token.toFloatArray(), 1e-5f, "token " + t);
        }
    }

    /** Sets a linear probe to logits +1 on the selected pairs and −1 elsewhere for the rows of x (rows ≤ H). */
    private static void fitExactly(ExpertChoicePredictor probe, Tensor x, boolean[] selected) {
        int n = x.rows();
        double[] xd = FiniteDifferences.toDouble(x);
        double[][] gram = new double[n][n];
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < n; b++) {
                for (int k = 0; k < H; k++) {
                    gram[a][b] += xd[a * H + k] * xd[b * H + k];
                }
            }
        }
        // W = Tᵀ (X Xᵀ)⁻¹ X: the least-norm weights with X Wᵀ = T exactly.
        Tensor w = probe.parameters().get(0).value();
        probe.parameters().get(1).value().fill(0f);
        for (int i = 0; i < E; i++) {
            double[] target = new double[n];
            for (int t = 0; t < n; t++) {
                target[t] = selected[t * E + i] ? 1 : -1;
            }
            double[] alpha = solve(gram, target);
            for (int k = 0; k < H; k++) {
                double v = 0;
                for (int t = 0; t < n; t++) {
                    v += alpha[t] * xd[t * H + k];
                }
                w.setFloat((long) i * H + k, (float) v);
            }
        }
    }

    /** A · y = b by Gaussian elimination with partial pivoting (A small and well conditioned). */
    private static double[] solve(double[][] a, double[] b) {
        int n = b.length;
        double[][] m = new double[n][];
        for (int i = 0; i < n; i++) {
            m[i] = Arrays.copyOf(a[i], n + 1);
            m[i][n] = b[i];
        }
        for (int c = 0; c < n; c++) {
            int pivot = c;
            for (int r = c + 1; r < n; r++) {
                if (Math.abs(m[r][c]) > Math.abs(m[pivot][c])) {
                    pivot = r;
                }
            }
            double[] swap = m[c];
            m[c] = m[pivot];
            m[pivot] = swap;
            for (int r = 0; r < n; r++) {
                if (r != c) {
                    double f = m[r][c] / m[c][c];
                    for (int k = c; k <= n; k++) {
                        m[r][k] -= f * m[c][k];
                    }
                }
            }
        }
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            y[i] = m[i][n] / m[i][i];
        }
        return y;
    }

    private static boolean[] selections(Dispatch d, int experts) {
        boolean[] out = new boolean[d.tokens() * experts];
        int[] expertOf = d.expertOfRows();
        for (int r = 0; r < d.rows(); r++) {
            out[d.token()[r] * experts + expertOf[r]] = true;
        }
        return out;
    }

    private static Tensor plus(Tensor a, Tensor b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
        return Tensor.of(x, a.rows(), a.cols());
    }

    private static void fill(Tensor t, Random random, double std) {
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (random.nextGaussian() * std));
        }
    }
}
