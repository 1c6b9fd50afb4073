package dev.moe4j.core.kernels;

/**
 * cos and sin of every (position, pair) angle up to a maximum position, computed once per model and shared by
 * all layers. The angle is position·invFreq in float32 and both values carry the attention scaling, as in
 * transformers' rotary embedding.
 */
public final class RopeTable {
    private final int half;
    private final int maxPositions;
    private final float[] cos;
    private final float[] sin;

    /** A table for positions [0, maxPositions). */
    public RopeTable(RopeFrequencies frequencies, int maxPositions) {
        this(frequencies.invFreq(), frequencies.attentionScaling(), maxPositions);
    }

    /** A table from inverse frequencies (rotaryDim/2 of them) and the factor that multiplies cos and sin. */
    public RopeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        if (invFreq.length == 0 || maxPositions < 1) {
            throw new IllegalArgumentException("rope table needs frequencies and at least one position");
        }
        this.half = invFreq.length;
        this.maxPositions = maxPositions;
        this.cos = new float[Math.multiplyExact(maxPositions, half)];
        this.sin = new float[cos.length];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = p * invFreq[i];
                cos[p * half + i] = (float) Math.cos(angle) * attentionScaling;
                sin[p * half + i] = (float) Math.sin(angle) * attentionScaling;
            }
        }
    }

    public int rotaryDim() {
        return 2 * half;
    }

    public int maxPositions() {
        return maxPositions;
    }

    /** cos of pair i at position p, scaled. */
    public float cos(int p, int i) {
        return cos[p * half + i];
    }

    /** sin of pair i at position p, scaled. */
    public float sin(int p, int i) {
        return sin[p * half + i];
    }

    float[] cosTable() {
        return cos;
    }

    float[] sinTable() {
        return sin;
    }
}
