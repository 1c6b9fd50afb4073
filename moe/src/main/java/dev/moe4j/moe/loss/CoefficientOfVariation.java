package dev.moe4j.moe.loss;

/**
 * CV² = variance / mean² of a vector (population variance), the balance measure of Shazeer et al.'s importance
 * and load losses, with its gradient.
 */
final class CoefficientOfVariation {
    private CoefficientOfVariation() {
    }

    static double squared(double[] v) {
        double mean = mean(v);
        double var = 0;
        for (double x : v) {
            var += (x - mean) * (x - mean);
        }
        var /= v.length;
        return var / (mean * mean);
    }

    /** d CV² / d vᵢ = 2(vᵢ − μ)/(n μ²) − 2σ²/(n μ³). */
    static double[] squaredGradient(double[] v) {
        int n = v.length;
        double mean = mean(v);
        double var = 0;
        for (double x : v) {
            var += (x - mean) * (x - mean);
        }
        var /= n;
        double[] g = new double[n];
        for (int i = 0; i < n; i++) {
            g[i] = 2 * (v[i] - mean) / (n * mean * mean) - 2 * var / (n * mean * mean * mean);
        }
        return g;
    }

    private static double mean(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x;
        }
        return s / v.length;
    }
}
