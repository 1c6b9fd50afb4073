package dev.moe4j.core.kernels;

/**
 * The inverse frequencies of rotary position embeddings (one per rotated pair) and the factor that multiplies
 * cos and sin (YaRN's attention scaling, 1 elsewhere). The factories follow transformers' modeling_rope_utils
 * for the rope types moe4j's families use, in the same float32 arithmetic, so tables agree to the last bits.
 *
 * @param invFreq          rotaryDim/2 inverse frequencies, pair i turning by position·invFreq[i]
 * @param attentionScaling multiplies cos and sin
 */
public record RopeFrequencies(float[] invFreq, float attentionScaling) {
    /** The number of elements of a head that rotate. */
    public int rotaryDim() {
        return 2 * invFreq.length;
    }

    /** Rope type "default": invFreq[i] = 1 / theta^(2i/dim). */
    public static RopeFrequencies standard(double theta, int rotaryDim) {
        return new RopeFrequencies(powers(theta, rotaryDim), 1f);
    }

    /** Rope type "linear" (position interpolation): the default frequencies divided by {@code factor}. */
    public static RopeFrequencies linear(double theta, int rotaryDim, double factor) {
        float[] inv = powers(theta, rotaryDim);
        for (int i = 0; i < inv.length; i++) {
            inv[i] = inv[i] / (float) factor;
        }
        return new RopeFrequencies(inv, 1f);
    }

    /**
     * Rope type "llama3": long wavelengths (beyond originalMaxPositions/lowFreqFactor) are divided by factor,
     * short ones (below originalMaxPositions/highFreqFactor) kept, and those between blended smoothly.
     */
    public static RopeFrequencies llama3(double theta, int rotaryDim, double factor, double lowFreqFactor,
                                         double highFreqFactor, int originalMaxPositions) {
        float[] inv = powers(theta, rotaryDim);
        float lowFreqWavelen = (float) (originalMaxPositions / lowFreqFactor);
        float highFreqWavelen = (float) (originalMaxPositions / highFreqFactor);
        for (int i = 0; i < inv.length; i++) {
            float wavelen = (float) (2 * Math.PI) / inv[i];
            float scaled = wavelen > lowFreqWavelen ? inv[i] / (float) factor : inv[i];
            boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium) {
                float smooth = ((float) originalMaxPositions / wavelen - (float) lowFreqFactor)
                        / (float) (highFreqFactor - lowFreqFactor);
                scaled = (1f - smooth) * scaled / (float) factor + smooth * scaled;
            }
            inv[i] = scaled;
        }
        return new RopeFrequencies(inv, 1f);
    }

    /**
     * YaRN's parameters as a config's rope_parameters gives them.
     *
     * @param factor               context extension factor (the model code derives it from max_position_embeddings /
     *                             original_max_position_embeddings when the config leaves it out)
     * @param originalMaxPositions original_max_position_embeddings
     * @param betaFast             beta_fast (32 when absent)
     * @param betaSlow             beta_slow (1 when absent)
     * @param mscale               mscale (0 when absent)
     * @param mscaleAllDim         mscale_all_dim (0 when absent)
     * @param attentionFactor      attention_factor, or NaN when absent (then derived from factor and the mscales)
     * @param truncate             truncate (true when absent): round the correction range to whole dimensions
     */
    public record Yarn(double factor, int originalMaxPositions, double betaFast, double betaSlow, double mscale,
                       double mscaleAllDim, double attentionFactor, boolean truncate) {
        /** The defaults of transformers for the optional fields. */
        public static Yarn of(double factor, int originalMaxPositions) {
            return new Yarn(factor, originalMaxPositions, 32, 1, 0, 0, Double.NaN, true);
        }
    }

    /**
     * Rope type "yarn": frequencies below the correction range are interpolated (divided by factor), those
     * above kept, a linear ramp between; cos and sin are multiplied by the attention factor.
     */
    public static RopeFrequencies yarn(double theta, int rotaryDim, Yarn y) {
        int half = rotaryDim / 2;
        double attention = y.attentionFactor();
        if (Double.isNaN(attention)) {
            attention = y.mscale() != 0 && y.mscaleAllDim() != 0
                    ? yarnMscale(y.factor(), y.mscale()) / yarnMscale(y.factor(), y.mscaleAllDim())
                    : yarnMscale(y.factor(), 1);
        }
        double low = correctionDim(y.betaFast(), rotaryDim, theta, y.originalMaxPositions());
        double high = correctionDim(y.betaSlow(), rotaryDim, theta, y.originalMaxPositions());
        if (y.truncate()) {
            low = Math.floor(low);
            high = Math.ceil(high);
        }
        low = Math.max(low, 0);
        high = Math.min(high, rotaryDim - 1);
        if (low == high) {
            high += 0.001; // the ramp would divide by zero
        }
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float pos = (float) Math.pow(theta, (float) (2 * i) / rotaryDim);
            float extrapolation = 1f / pos;
            float interpolation = 1f / ((float) y.factor() * pos);
            float ramp = Math.clamp(((float) i - (float) low) / (float) (high - low), 0f, 1f);
            float extrapolationWeight = 1f - ramp;
            inv[i] = interpolation * (1f - extrapolationWeight) + extrapolation * extrapolationWeight;
        }
        return new RopeFrequencies(inv, (float) attention);
    }

    private static double yarnMscale(double scale, double mscale) {
        return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
    }

    /** The dimension whose wavelength fits {@code rotations} times into the original context. */
    private static double correctionDim(double rotations, int dim, double theta, int maxPositions) {
        return dim * Math.log(maxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    /** 1 / theta^(2i/dim) in float32, as torch computes it. */
    private static float[] powers(double theta, int rotaryDim) {
        if (rotaryDim <= 0 || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException("rotary dimension must be positive and even, got " + rotaryDim);
        }
        float[] inv = new float[rotaryDim / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = 1f / (float) Math.pow(theta, (float) (2 * i) / rotaryDim);
        }
        return inv;
    }
}
