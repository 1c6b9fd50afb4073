package dev.moe4j.moe.loss;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.Mode;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.Noise;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.moe.testing.ReferenceRouting;
import dev.moe4j.moe.testing.ReplayedNoise;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.Random;
import java.util.random.RandomGenerator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The importance and load losses of noisy top-k gating against Shazeer et al. 2017's formulas (section 2.1 and
 * appendix A), computed here in float64 from the same inputs and noise sample:
 * <pre>
 *   H(x)ᵢ = (x·W_g)ᵢ + StandardNormal() · Softplus((x·W_noise)ᵢ)
 *   G(x) = Softmax(KeepTopK(H(x), k))              Importance(X) = Σₓ G(x)        L = CV(Importance(X))²
 *   P(x, i) = Φ(((x·W_g)ᵢ − kth_excluding(H(x), k, i)) / Softplus((x·W_noise)ᵢ))
 *   Load(X)ᵢ = Σₓ P(x, i)                                                          L = CV(Load(X))²
 * </pre>
 * with CV² = population variance / mean². The router linear is the identity, so x is the clean logits.
 */
class ShazeerLossesTest {
    private static final int TOKENS = 24;
    private static final int EXPERTS = 6;

    @ParameterizedTest
    @CsvSource({"1, 11", "2, 12", "3, 13"})
    void importanceOfTheNoisyTopKGatesAndLoadMatchThePapersFormulas(int k, long seed) {
        var random = new Random(seed);
        double[][] x = gaussian(random, TOKENS, EXPERTS, 1.5);
        double[][] wNoise = gaussian(random, EXPERTS, EXPERTS, 0.5);
        double[][] sample = gaussian(random, TOKENS, EXPERTS, 1.0);

        MoeConfig c = MoeConfig.builder(EXPERTS, 1, EXPERTS, k).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX)
                .noise(Noise.learnedGaussian()).build();
        var router = new TopKRouter(c, identity(), null, tensor(wNoise), null);
        Routing r = router.route(tensor(x), Mode.TRAINING, replay(sample));

        double[][] clean = new double[TOKENS][EXPERTS], std = new double[TOKENS][EXPERTS], h = new double[TOKENS][];
        for (int t = 0; t < TOKENS; t++) {
            for (int i = 0; i < EXPERTS; i++) {
                double pre = 0;
                for (int j = 0; j < EXPERTS; j++) {
                    pre += f(x[t][j]) * f(wNoise[i][j]);
                }
                clean[t][i] = f(x[t][i]);
                std[t][i] = Math.log1p(Math.exp(pre));
            }
            h[t] = new double[EXPERTS];
            for (int i = 0; i < EXPERTS; i++) {
                h[t][i] = clean[t][i] + f(sample[t][i]) * std[t][i];
            }
        }
        double[] importance = new double[EXPERTS], load = new double[EXPERTS];
        for (int t = 0; t < TOKENS; t++) {
            double[] g = softmaxOfTopK(h[t], k);
            for (int i = 0; i < EXPERTS; i++) {
                importance[i] += g[i];
                double z = (clean[t][i] - kthExcluding(h[t], k, i)) / std[t][i];
                load[i] += ReferenceRouting.normalCdf(z);
            }
        }

        double expectedImportance = cvSquared(importance), expectedLoad = cvSquared(load);
        ImportanceLoss paperImportance = ImportanceLoss.ofPaper(c.gateOrder());
        LoadLoss paperLoad = LoadLoss.ofPaper(c.gateOrder());
        assertEquals(ImportanceLoss.Of.TOP_K_GATES, paperImportance.of(), "noisy top-k gating defaults to Shazeer's");
        assertEquals(LoadLoss.Threshold.KTH_EXCLUDING_SELF, paperLoad.threshold());
        assertEquals(expectedImportance, paperImportance.value(r), 1e-5 * expectedImportance);
        assertEquals(expectedLoad, paperLoad.value(r), 1e-5 * expectedLoad);

        // The other definitions sum other values: the test tells them apart.
        for (var other : new ImportanceLoss.Of[] {ImportanceLoss.Of.CLEAN_SOFTMAX, ImportanceLoss.Of.NOISY_SOFTMAX}) {
            double v = new ImportanceLoss(other).value(r);
            assertTrue(Math.abs(v - expectedImportance) > 1e-3 * expectedImportance, other + " gave " + v);
        }
    }

    /** Softmax over the k largest entries, zero elsewhere (KeepTopK sets the others to −∞). */
    private static double[] softmaxOfTopK(double[] v, int k) {
        double threshold = kthLargest(v, k);
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (double a : v) {
            max = Math.max(max, a);
        }
        double[] g = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] >= threshold) {
                g[i] = Math.exp(v[i] - max);
                sum += g[i];
            }
        }
        for (int i = 0; i < v.length; i++) {
            g[i] /= sum;
        }
        return g;
    }

    /** The k-th highest component of v, leaving out component i. */
    private static double kthExcluding(double[] v, int k, int i) {
        double[] others = new double[v.length - 1];
        for (int j = 0, o = 0; j < v.length; j++) {
            if (j != i) {
                others[o++] = v[j];
            }
        }
        return kthLargest(others, k);
    }

    private static double kthLargest(double[] v, int k) {
        double[] sorted = v.clone();
        java.util.Arrays.sort(sorted);
        return sorted[sorted.length - k];
    }

    private static double cvSquared(double[] v) {
        double mean = 0;
        for (double a : v) {
            mean += a / v.length;
        }
        double variance = 0;
        for (double a : v) {
            variance += (a - mean) * (a - mean) / v.length;
        }
        return variance / (mean * mean);
    }

    /** The router computes in float32: the reference starts from the same rounded inputs. */
    private static double f(double v) {
        return (float) v;
    }

    private static double[][] gaussian(Random random, int rows, int cols, double std) {
        double[][] a = new double[rows][cols];
        for (double[] row : a) {
            for (int j = 0; j < cols; j++) {
                row[j] = random.nextGaussian() * std;
            }
        }
        return a;
    }

    private static Tensor tensor(double[][] a) {
        Tensor t = Tensor.zeros(a.length, a[0].length);
        for (int r = 0; r < a.length; r++) {
            for (int c = 0; c < a[0].length; c++) {
                t.set((float) a[r][c], r, c);
            }
        }
        return t;
    }

    private static Tensor identity() {
        Tensor w = Tensor.zeros(EXPERTS, EXPERTS);
        for (int i = 0; i < EXPERTS; i++) {
            w.set(1f, i, i);
        }
        return w;
    }

    /** Hands the router the test's N(0, 1) sample, token by token, expert by expert. */
    private static RandomGenerator replay(double[][] sample) {
        return ReplayedNoise.of(Arrays.stream(sample).flatMapToDouble(Arrays::stream).toArray());
    }
}
