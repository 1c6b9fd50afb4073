package dev.moe4j.core.testing;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.kernels.RopeLayout;

import java.util.function.UnaryOperator;

/**
 * Naive float64 versions of the kernels, written for clarity rather than speed: the yardstick the kernel tests
 * (and other modules' tests, through core's test-jar) measure against. Arrays are row-major.
 */
public final class Reference {
    private Reference() {
    }

    /** Every element of t, widened to double. */
    public static double[] values(Tensor t) {
        double[] out = new double[Math.toIntExact(t.size())];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    // ---- linear algebra ----

    /** y[n, m] = x[n, k] · w[m, k]ᵀ. */
    public static double[] matmulXWt(double[] x, double[] w, int n, int k, int m) {
        double[] y = new double[n * m];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < m; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    s += x[i * k + p] * w[j * k + p];
                }
                y[i * m + j] = s;
            }
        }
        return y;
    }

    /** c[n, m] = a[n, k] · b[k, m]. */
    public static double[] matmul(double[] a, double[] b, int n, int k, int m) {
        double[] c = new double[n * m];
        for (int i = 0; i < n; i++) {
            for (int p = 0; p < k; p++) {
                double av = a[i * k + p];
                for (int j = 0; j < m; j++) {
                    c[i * m + j] += av * b[p * m + j];
                }
            }
        }
        return c;
    }

    /** aᵀ for a [rows, cols]. */
    public static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        return t;
    }

    // ---- normalisation and softmax ----

    /** x / sqrt(mean(x²) + eps) · w per row; w may be null. */
    public static double[] rmsNorm(double[] x, double[] w, int rows, int cols, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int c = 0; c < cols; c++) {
                ss += x[r * cols + c] * x[r * cols + c];
            }
            double inv = 1 / Math.sqrt(ss / cols + eps);
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = x[r * cols + c] * inv * (w == null ? 1 : w[c]);
            }
        }
        return y;
    }

    /** Row-wise softmax. */
    public static double[] softmax(double[] x, int rows, int cols) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, x[r * cols + c]);
            }
            double sum = 0;
            for (int c = 0; c < cols; c++) {
                sum += Math.exp(x[r * cols + c] - max);
            }
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = Math.exp(x[r * cols + c] - max) / sum;
            }
        }
        return y;
    }

    /** Row-wise log Σ exp. */
    public static double[] logSumExp(double[] x, int rows, int cols) {
        double[] out = new double[rows];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, x[r * cols + c]);
            }
            double sum = 0;
            for (int c = 0; c < cols; c++) {
                sum += Math.exp(x[r * cols + c] - max);
            }
            out[r] = max + Math.log(sum);
        }
        return out;
    }

    // ---- activations ----

    /** f(x) in float64; exact GELU through an independent erf series. */
    public static double activation(Activation kind, double x) {
        return switch (kind) {
            case SILU -> x / (1 + Math.exp(-x));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case GELU -> 0.5 * x * erfc(-x / Math.sqrt(2));
            case RELU -> Math.max(x, 0);
        };
    }

    public static double[] activation(Activation kind, double[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = activation(kind, x[i]);
        }
        return y;
    }

    /**
     * erfc to float64 accuracy, by erf's Taylor series below 3 and Laplace's continued fraction above (so the
     * tail keeps its relative precision); deliberately a different method from the kernel's Chebyshev fit.
     */
    public static double erfc(double x) {
        if (x < 0) {
            return 2 - erfc(-x);
        }
        if (x < 3) {
            double term = x, sum = x;
            for (int n = 1; n < 200 && Math.abs(term) > 1e-18 * Math.abs(sum); n++) {
                term *= -x * x / n;
                sum += term / (2 * n + 1);
            }
            return 1 - 2 / Math.sqrt(Math.PI) * sum;
        }
        // erfc(x) = exp(−x²)/√π / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated from the tail
        double f = 0;
        for (int n = 80; n >= 1; n--) {
            f = (n / 2.0) / (x + f);
        }
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + f);
    }

    /** The gated unit: gateUp [rows, 2I] → [rows, I]. */
    public static double[] glu(GluParams p, double[] gateUp, int rows, int inter) {
        double[] out = new double[rows * inter];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inter; i++) {
                boolean halves = p.layout() == GluParams.Layout.HALVES;
                double gate = gateUp[r * 2 * inter + (halves ? i : 2 * i)];
                double up = gateUp[r * 2 * inter + (halves ? inter + i : 2 * i + 1)];
                out[r * inter + i] = switch (p) {
                    case GluParams.Gated g -> activation(g.activation(), gate) * up;
                    case GluParams.Clamped c -> {
                        double g = Math.min(gate, c.limit());
                        double u = Math.max(-c.limit(), Math.min(up, c.limit()));
                        yield (u + 1) * g / (1 + Math.exp(-c.alpha() * g));
                    }
                };
            }
        }
        return out;
    }

    // ---- rotary embedding ----

    /**
     * Rotates the first rotaryDim elements of every head of x [tokens, heads·headDim] by position·invFreq[i]
     * (the angle rounded to float32 first, as the models compute it) and scales by {@code scaling}.
     */
    public static double[] rope(double[] x, int[] positions, float[] invFreq, double scaling, RopeLayout layout,
                                int headDim, int rotaryDim) {
        double[] y = x.clone();
        int tokens = positions.length, perToken = x.length / tokens, half = rotaryDim / 2;
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < perToken / headDim; h++) {
                int base = t * perToken + h * headDim;
                for (int i = 0; i < half; i++) {
                    double angle = (float) (positions[t] * invFreq[i]);
                    double c = Math.cos(angle) * scaling, s = Math.sin(angle) * scaling;
                    int ia = layout == RopeLayout.HALF ? base + i : base + 2 * i;
                    int ib = layout == RopeLayout.HALF ? base + half + i : base + 2 * i + 1;
                    y[ia] = x[ia] * c - x[ib] * s;
                    y[ib] = x[ib] * c + x[ia] * s;
                }
            }
        }
        return y;
    }

    // ---- gradients ----

    /**
     * ∂/∂x of Σ dy ⊙ f(x) by central differences in float64: the gradient any backward kernel must produce for
     * the upstream gradient dy. Costs two evaluations of f per element of x; keep x small.
     */
    public static double[] gradient(UnaryOperator<double[]> f, double[] x, double[] dy, double h) {
        double[] g = new double[x.length];
        double[] probe = x.clone();
        for (int i = 0; i < x.length; i++) {
            probe[i] = x[i] + h;
            double plus = dotProduct(dy, f.apply(probe));
            probe[i] = x[i] - h;
            double minus = dotProduct(dy, f.apply(probe));
            probe[i] = x[i];
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    public static double dotProduct(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }
}
