package dev.moe4j.train.experiment;

/**
 * The few statistics the experiments report: mean and spread over seeds, and the information measures of how
 * tokens spread over experts (entropy, mutual information, Jensen-Shannon divergence), all in bits.
 */
public final class Statistics {
    private Statistics() {
    }

    public static double mean(double[] values) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return sum / values.length;
    }

    /** Sample standard deviation (n − 1 in the denominator, as a spread over seeds); 0 for one value. */
    public static double std(double[] values) {
        if (values.length < 2) {
            return 0;
        }
        double m = mean(values), sum = 0;
        for (double v : values) {
            sum += (v - m) * (v - m);
        }
        return Math.sqrt(sum / (values.length - 1));
    }

    /** Shannon entropy (bits) of counts or unnormalised weights. */
    public static double entropy(double[] weights) {
        double total = 0;
        for (double w : weights) {
            total += w;
        }
        if (total <= 0) {
            return 0;
        }
        double h = 0;
        for (double w : weights) {
            if (w > 0) {
                double p = w / total;
                h -= p * log2(p);
            }
        }
        return h;
    }

    /**
     * Mutual information (bits) between the row and column variables of a contingency table of counts: how much
     * knowing the row (a domain, a token type) tells about the column (the expert). Plug-in estimate.
     */
    public static double mutualInformation(double[][] counts) {
        int rows = counts.length, cols = rows == 0 ? 0 : counts[0].length;
        double total = 0;
        double[] rowSum = new double[rows], colSum = new double[cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                rowSum[r] += counts[r][c];
                colSum[c] += counts[r][c];
                total += counts[r][c];
            }
        }
        if (total <= 0) {
            return 0;
        }
        double mi = 0;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                double n = counts[r][c];
                if (n > 0) {
                    mi += n / total * log2(n * total / (rowSum[r] * colSum[c]));
                }
            }
        }
        return Math.max(0, mi);
    }

    /** Entropy (bits) of the row variable of a contingency table. */
    public static double rowEntropy(double[][] counts) {
        double[] rowSum = new double[counts.length];
        for (int r = 0; r < counts.length; r++) {
            for (double v : counts[r]) {
                rowSum[r] += v;
            }
        }
        return entropy(rowSum);
    }

    /** Jensen-Shannon divergence (bits, between 0 and 1) of two distributions given as counts or weights. */
    public static double jensenShannon(double[] a, double[] b) {
        double[] p = normalised(a), q = normalised(b);
        double js = 0;
        for (int i = 0; i < p.length; i++) {
            double m = (p[i] + q[i]) / 2;
            if (p[i] > 0) {
                js += 0.5 * p[i] * log2(p[i] / m);
            }
            if (q[i] > 0) {
                js += 0.5 * q[i] * log2(q[i] / m);
            }
        }
        return Math.max(0, js);
    }

    /** The weights divided by their sum (all zeros stay zeros). */
    public static double[] normalised(double[] weights) {
        double total = 0;
        for (double w : weights) {
            total += w;
        }
        double[] out = new double[weights.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = total > 0 ? weights[i] / total : 0;
        }
        return out;
    }

    private static double log2(double x) {
        return Math.log(x) / Math.log(2);
    }
}
