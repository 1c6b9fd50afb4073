package dev.moe4j.core.kernels;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The rope types' inverse frequencies against their published formulas, evaluated here in float64. */
class RopeFrequenciesTest {
    private static double[] standard(double theta, int dim) {
        double[] inv = new double[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = Math.pow(theta, -2.0 * i / dim);
        }
        return inv;
    }

    private static void assertRelative(double[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], Math.abs(expected[i]) * tol, "inv_freq[" + i + "]");
        }
    }

    @Test
    void defaultFrequenciesArePowersOfTheta() {
        var f = RopeFrequencies.standard(10000, 8);
        assertRelative(new double[] {1, 0.1, 0.01, 0.001}, f.invFreq(), 1e-6);
        assertEquals(1f, f.attentionScaling());
        assertEquals(8, f.rotaryDim());
    }

    @Test
    void linearScalingDividesEveryFrequency() {
        double[] expected = standard(10000, 64);
        for (int i = 0; i < expected.length; i++) {
            expected[i] /= 4;
        }
        assertRelative(expected, RopeFrequencies.linear(10000, 64, 4).invFreq(), 1e-6);
    }

    @Test
    void llama3KeepsHighFrequenciesDividesLowOnesAndBlendsBetween() {
        // Llama 3.1's published parameters: theta 500000, factor 8, low 1, high 4, original context 8192
        double[] base = standard(500000, 128);
        float[] inv = RopeFrequencies.llama3(500000, 128, 8, 1, 4, 8192).invFreq();
        for (int i = 0; i < base.length; i++) {
            double wavelen = 2 * Math.PI / base[i];
            double expected;
            if (wavelen < 8192 / 4.0) {
                expected = base[i];
            } else if (wavelen > 8192 / 1.0) {
                expected = base[i] / 8;
            } else {
                double smooth = (8192 / wavelen - 1) / (4 - 1);
                expected = (1 - smooth) * base[i] / 8 + smooth * base[i];
            }
            assertEquals(expected, inv[i], expected * 1e-5, "inv_freq[" + i + "]");
        }
        assertEquals(base[0], inv[0], 1e-7);
        assertEquals(base[63] / 8, inv[63], base[63] / 8 * 1e-5);
    }

    @Test
    void yarnRampsFromExtrapolationToInterpolationAndScalesAttention() {
        // gpt-oss's rope_parameters: theta 150000, factor 32, original 4096, beta 32/1, truncate false; head_dim 64
        var y = new RopeFrequencies.Yarn(32, 4096, 32, 1, 0, 0, Double.NaN, false);
        var f = RopeFrequencies.yarn(150000, 64, y);
        assertEquals(0.1 * Math.log(32) + 1, f.attentionScaling(), 1e-6);
        double[] base = standard(150000, 64);
        double low = 64 * Math.log(4096 / (32 * 2 * Math.PI)) / (2 * Math.log(150000));
        double high = 64 * Math.log(4096 / (1 * 2 * Math.PI)) / (2 * Math.log(150000));
        for (int i = 0; i < base.length; i++) {
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            double expected = base[i] / 32 * ramp + base[i] * (1 - ramp);
            assertEquals(expected, f.invFreq()[i], expected * 1e-5, "inv_freq[" + i + "]");
        }
    }

    @Test
    void yarnTruncatesTheCorrectionRangeByDefaultAndTakesDeepSeekMscales() {
        var y = new RopeFrequencies.Yarn(40, 4096, 32, 1, 1.0, 1.0, Double.NaN, true);
        var f = RopeFrequencies.yarn(10000, 64, y);
        assertEquals(1f, f.attentionScaling(), 1e-7); // mscale == mscale_all_dim: the ratio is 1
        double low = Math.floor(64 * Math.log(4096 / (32 * 2 * Math.PI)) / (2 * Math.log(10000)));
        double high = Math.ceil(64 * Math.log(4096 / (2 * Math.PI)) / (2 * Math.log(10000)));
        double[] base = standard(10000, 64);
        for (int i = 0; i < base.length; i++) {
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            double expected = base[i] / 40 * ramp + base[i] * (1 - ramp);
            assertEquals(expected, f.invFreq()[i], expected * 1e-5, "inv_freq[" + i + "]");
        }
        var scaled = RopeFrequencies.yarn(10000, 64, new RopeFrequencies.Yarn(40, 4096, 32, 1, 0.707, 1.0, Double.NaN, true));
        assertEquals((0.1 * 0.707 * Math.log(40) + 1) / (0.1 * Math.log(40) + 1), scaled.attentionScaling(), 1e-6);
        var given = RopeFrequencies.yarn(10000, 64, new RopeFrequencies.Yarn(40, 4096, 32, 1, 0, 0, 0.5, true));
        assertEquals(0.5f, given.attentionScaling());
    }

    @Test
    void tableHoldsScaledCosAndSin() {
        var table = new RopeTable(new float[] {1f, 0.5f}, 2f, 4);
        assertEquals(2 * Math.cos(3), table.cos(3, 0), 1e-6);
        assertEquals(2 * Math.sin(1.5), table.sin(3, 1), 1e-6);
        assertEquals(4, table.rotaryDim());
    }
}
