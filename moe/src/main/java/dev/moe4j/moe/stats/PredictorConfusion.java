package dev.moe4j.moe.stats;

/**
 * How an expert-choice predictor's choices compared with the experts' actual batch selections, over
 * (token, expert) pairs: a pair is positive when the expert took the token.
 */
public record PredictorConfusion(long truePositives, long falsePositives, long falseNegatives, long trueNegatives) {
    /** Counts of predicted choices against actual ones, both [tokens, experts]. */
    public static PredictorConfusion of(boolean[] predicted, boolean[] actual) {
        long tp = 0, fp = 0, fn = 0, tn = 0;
        for (int i = 0; i < actual.length; i++) {
            if (predicted[i]) {
                if (actual[i]) {
                    tp++;
                } else {
                    fp++;
                }
            } else if (actual[i]) {
                fn++;
            } else {
                tn++;
            }
        }
        return new PredictorConfusion(tp, fp, fn, tn);
    }

    public PredictorConfusion plus(PredictorConfusion o) {
        return new PredictorConfusion(truePositives + o.truePositives, falsePositives + o.falsePositives,
                falseNegatives + o.falseNegatives, trueNegatives + o.trueNegatives);
    }

    public long pairs() {
        return truePositives + falsePositives + falseNegatives + trueNegatives;
    }

    /** Pairs predicted correctly, either way. */
    public double accuracy() {
        return ratio(truePositives + trueNegatives, pairs());
    }

    /** Of the pairs it routed, those the batch routed too (NaN when it routed none). */
    public double precision() {
        return ratio(truePositives, truePositives + falsePositives);
    }

    /** Of the pairs the batch routed, those it routed too (NaN when the batch routed none). */
    public double recall() {
        return ratio(truePositives, truePositives + falseNegatives);
    }

    private static double ratio(long a, long b) {
        return b == 0 ? Double.NaN : (double) a / b;
    }
}
