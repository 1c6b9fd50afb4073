package dev.moe4j.moe.router;

/**
 * Gradients arriving at a router's outputs, [tokens, experts] each, allocated when first written: from the
 * combine step (dL/d weight of each served (token, expert)) and from the balance losses (through the clean
 * logits, the gate matrix, the noisy logits and the noise scale). For Soft MoE: [tokens, slots] gradients of the
 * dispatch and combine weights.
 */
public final class RouterGrads {
    private final int rows;
    private final int cols;
    private float[] weights;
    private float[] gates;
    private float[] logits;
    private float[] noisyLogits;
    private float[] noiseStd;
    private float[] dispatch;
    private float[] combine;

    public RouterGrads(int rows, int cols) {
        this.rows = rows;
        this.cols = cols;
    }

    /**
     * dL/d gate weight of (token, expert) on the token's kept experts ({@link Routing#topKGates()}): the combine
     * step's where the pair was served, plus any loss over the kept gates. Read only on the kept experts.
     */
    public float[] weights() {
        return weights = alloc(weights);
    }

    /** dL/d gate matrix ({@link Routing#gates()}). */
    public float[] gates() {
        return gates = alloc(gates);
    }

    /** dL/d clean router logits. */
    public float[] logits() {
        return logits = alloc(logits);
    }

    /** dL/d noisy logits. */
    public float[] noisyLogits() {
        return noisyLogits = alloc(noisyLogits);
    }

    /** dL/d noise standard deviation. */
    public float[] noiseStd() {
        return noiseStd = alloc(noiseStd);
    }

    /** Soft MoE: dL/d dispatch weights. */
    public float[] dispatch() {
        return dispatch = alloc(dispatch);
    }

    /** Soft MoE: dL/d combine weights. */
    public float[] combine() {
        return combine = alloc(combine);
    }

    boolean hasWeights() {
        return weights != null;
    }

    boolean hasGates() {
        return gates != null;
    }

    boolean hasLogits() {
        return logits != null;
    }

    boolean hasNoisyLogits() {
        return noisyLogits != null;
    }

    boolean hasNoiseStd() {
        return noiseStd != null;
    }

    private float[] alloc(float[] a) {
        return a != null ? a : new float[rows * cols];
    }
}
