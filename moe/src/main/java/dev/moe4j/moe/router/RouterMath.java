package dev.moe4j.moe.router;

/**
 * The small [tokens, experts] arithmetic of routing: scores, probabilities and their backward passes, in float32
 * over plain arrays (a router's rows are a few dozen floats; the heavy work is in the matmuls).
 */
public final class RouterMath {
    private RouterMath() {
    }

    /** out[0..n) = softmax(in[from..from+n)). */
    public static void softmax(float[] in, int from, int n, float[] out, int outFrom) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, in[from + i]);
        }
        float sum = 0;
        for (int i = 0; i < n; i++) {
            float v = (float) Math.exp(in[from + i] - max);
            out[outFrom + i] = v;
            sum += v;
        }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) {
            out[outFrom + i] *= inv;
        }
    }

    /** log Σ exp(in[from..from+n)), stable for large logits. */
    public static float logSumExp(float[] in, int from, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, in[from + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(in[from + i] - max);
        }
        return max + (float) Math.log(sum);
    }

    public static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }

    /** log(1 + eˣ) without overflow. */
    public static float softplus(float x) {
        return x > 20f ? x : (float) Math.log1p(Math.exp(x));
    }

    /** Scores of a [rows, n] matrix: softmax per row or sigmoid per element. */
    public static float[] scores(Scoring scoring, float[] logits, int rows, int n) {
        float[] out = new float[rows * n];
        for (int r = 0; r < rows; r++) {
            if (scoring == Scoring.SOFTMAX) {
                softmax(logits, r * n, n, out, r * n);
            } else {
                for (int i = r * n; i < r * n + n; i++) {
                    out[i] = sigmoid(logits[i]);
                }
            }
        }
        return out;
    }

    /**
     * Adds to dLogits the gradient through the scores of one row: softmax s ⊙ (ds − ⟨ds, s⟩) or sigmoid
     * ds ⊙ s(1 − s).
     */
    public static void scoresBackward(Scoring scoring, float[] s, float[] ds, int from, int n, float[] dLogits) {
        if (scoring == Scoring.SOFTMAX) {
            softmaxBackward(s, ds, from, n, dLogits);
        } else {
            for (int i = from; i < from + n; i++) {
                dLogits[i] += ds[i] * s[i] * (1f - s[i]);
            }
        }
    }

    /** dLogits[from..from+n) += s ⊙ (ds − ⟨ds, s⟩) for a softmax row s. */
    public static void softmaxBackward(float[] s, float[] ds, int from, int n, float[] dLogits) {
        float dot = 0;
        for (int i = from; i < from + n; i++) {
            dot += ds[i] * s[i];
        }
        for (int i = from; i < from + n; i++) {
            dLogits[i] += s[i] * (ds[i] - dot);
        }
    }

    /**
     * The router's probabilities: softmax rows, or sigmoid scores normalised per row to sum 1 (DeepSeek-V3's
     * s'ᵢ = sᵢ / Σⱼ sⱼ).
     */
    public static float[] probabilities(Scoring scoring, float[] logits, int rows, int n) {
        float[] p = scores(scoring, logits, rows, n);
        if (scoring == Scoring.SIGMOID) {
            for (int r = 0; r < rows; r++) {
                float sum = 0;
                for (int i = r * n; i < r * n + n; i++) {
                    sum += p[i];
                }
                for (int i = r * n; i < r * n + n; i++) {
                    p[i] /= sum;
                }
            }
        }
        return p;
    }

    /** Adds to dLogits the gradient of a loss through {@link #probabilities}, given dL/dprobabilities. */
    public static void probabilitiesBackward(Scoring scoring, float[] logits, float[] p, float[] dp, int rows, int n,
                                             float[] dLogits) {
        for (int r = 0; r < rows; r++) {
            int from = r * n;
            if (scoring == Scoring.SOFTMAX) {
                softmaxBackward(p, dp, from, n, dLogits);
            } else {
                // p = s / Σs with s = σ(l): ds_i = (dp_i − ⟨dp, p⟩) / Σs, then dl_i = ds_i · s_i (1 − s_i).
                float sum = 0, dot = 0;
                for (int i = from; i < from + n; i++) {
                    sum += sigmoid(logits[i]);
                    dot += dp[i] * p[i];
                }
                for (int i = from; i < from + n; i++) {
                    float s = sigmoid(logits[i]);
                    dLogits[i] += (dp[i] - dot) / sum * s * (1f - s);
                }
            }
        }
    }

    /**
     * The indices of the k largest of values[from..from+n) (entries equal to -∞ are never taken), descending,
     * ties to the lower index; unused slots of out are set to -1. Returns the number found.
     */
    public static int topK(float[] values, int from, int n, int k, int[] out, int outFrom) {
        int found = 0;
        for (int i = 0; i < n; i++) {
            float v = values[from + i];
            if (v == Float.NEGATIVE_INFINITY) {
                continue;
            }
            // Insertion into the sorted prefix: k is small (≤ experts).
            int pos = Math.min(found, k);
            while (pos > 0 && values[from + out[outFrom + pos - 1]] < v) {
                pos--;
            }
            if (pos < k) {
                int last = Math.min(found, k - 1);
                for (int j = last; j > pos; j--) {
                    out[outFrom + j] = out[outFrom + j - 1];
                }
                out[outFrom + pos] = i;
                found = Math.min(found + 1, k);
            }
        }
        for (int j = found; j < k; j++) {
            out[outFrom + j] = -1;
        }
        return found;
    }
}
