package dev.moe4j.moe.router;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.core.kernels.TopK;

/**
 * The small [tokens, experts] arithmetic of routing over plain float arrays, on top of core's Softmax and TopK
 * kernels: scores and probabilities with their backward passes, and selections that never take a masked (−∞)
 * entry.
 */
public final class RouterMath {
    private RouterMath() {
    }

    public static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }

    /** log(1 + eˣ) without overflow. */
    public static float softplus(float x) {
        return x > 20f ? x : (float) Math.log1p(Math.exp(x));
    }

    /** Softmax of every row of a [rows, n] matrix. */
    public static float[] softmax(float[] logits, int rows, int n) {
        float[] out = new float[rows * n];
        Softmax.forward(Tensor.of(out, rows, n), Tensor.of(logits, rows, n));
        return out;
    }

    /** log Σ exp of every row of a [rows, n] matrix. */
    public static float[] logSumExp(float[] logits, int rows, int n) {
        float[] out = new float[rows];
        Softmax.logSumExp(Tensor.of(logits, rows, n), out);
        return out;
    }

    /** Scores of a [rows, n] matrix: softmax per row or sigmoid per element. */
    public static float[] scores(Scoring scoring, float[] logits, int rows, int n) {
        if (scoring == Scoring.SOFTMAX) {
            return softmax(logits, rows, n);
        }
        float[] out = new float[rows * n];
        for (int i = 0; i < out.length; i++) {
            out[i] = sigmoid(logits[i]);
        }
        return out;
    }

    /**
     * Adds to dLogits the gradient through the scores s of a [rows, n] matrix: softmax s ⊙ (ds − ⟨ds, s⟩) per row,
     * or sigmoid ds ⊙ s(1 − s).
     */
    public static void scoresBackward(Scoring scoring, float[] s, float[] ds, int rows, int n, float[] dLogits) {
        if (scoring == Scoring.SOFTMAX) {
            float[] d = new float[rows * n];
            Softmax.backward(Tensor.of(d, rows, n), Tensor.of(ds, rows, n), Tensor.of(s, rows, n));
            for (int i = 0; i < d.length; i++) {
                dLogits[i] += d[i];
            }
        } else {
            for (int i = 0; i < rows * n; i++) {
                dLogits[i] += ds[i] * s[i] * (1f - s[i]);
            }
        }
    }

    /** [cols, rows] from [rows, cols]. */
    public static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
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
        if (scoring == Scoring.SOFTMAX) {
            scoresBackward(scoring, p, dp, rows, n, dLogits);
            return;
        }
        // p = s / Σs with s = σ(l): ds_i = (dp_i − ⟨dp, p⟩) / Σs, then dl_i = ds_i · s_i (1 − s_i).
        for (int r = 0; r < rows; r++) {
            int from = r * n;
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

    /**
     * The indices of the k largest of values[from..from+n), descending, ties to the lower index (core's TopK);
     * entries equal to −∞ are masked and come back as −1.
     */
    public static void topK(float[] values, int from, int n, int k, int[] out, int outFrom) {
        float[] picked = new float[k];
        int[] index = new int[k];
        TopK.row(values, from, n, k, index, picked, 0);
        for (int j = 0; j < k; j++) {
            out[outFrom + j] = picked[j] == Float.NEGATIVE_INFINITY ? -1 : index[j];
        }
    }
}
