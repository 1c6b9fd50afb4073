package dev.moe4j.moe.router;

import dev.moe4j.moe.dispatch.Dispatch;

/**
 * What a router decided for one batch of tokens, and what the balance losses, the statistics and the backward
 * pass need of it. Arrays are row-major [tokens, experts] unless said otherwise.
 */
public final class Routing {
    final int tokens;
    final int experts;
    final int k;
    final Scoring scoring;
    final float[] logits;
    float[] gates;
    float[] topKGates;
    float[] noisyLogits;
    float[] noiseStd;
    float[] noise;
    float[] jitter;
    int[] choices;
    Dispatch dispatch;
    SoftDispatch soft;
    int requested;
    int dropped;
    int rerouted;
    int sequenceLength;
    Object trace;
    ExpertChoicePredictor.Fit predictorFit;
    /** Computed on first use, or handed over by the router where it already computed the same values. */
    float[] probabilities;

    Routing(int tokens, int experts, int k, Scoring scoring, float[] logits) {
        this.tokens = tokens;
        this.experts = experts;
        this.k = k;
        this.scoring = scoring;
        this.logits = logits;
        this.sequenceLength = tokens;
    }

    public int tokens() {
        return tokens;
    }

    public int experts() {
        return experts;
    }

    /** Choices per token of a token-choice router (0 for expert choice and Soft MoE). */
    public int k() {
        return k;
    }

    public Scoring scoring() {
        return scoring;
    }

    /** [tokens, experts] router logits, before any Gaussian noise (for Soft MoE: [tokens, slots]). */
    public float[] logits() {
        return logits;
    }

    /**
     * [tokens, experts] the dense gate matrix G(x): the scores of the selection logits for score-then-top-k
     * routers and expert choice, the sparse softmax over the kept logits for top-k-then-softmax (Shazeer 2017).
     * Null for Soft MoE.
     */
    public float[] gates() {
        return gates;
    }

    /**
     * [tokens, experts] each token's gate weights on its kept experts and zero elsewhere: Shazeer et al.'s G(x),
     * what multiplies the experts' outputs before a capacity drops any (routed scaling included; with re-routing,
     * the experts that served the token). Null unless token choice.
     */
    public float[] topKGates() {
        return topKGates;
    }

    /** [tokens, experts] logits + noise · noiseStd when Gaussian noise was added, else null. */
    public float[] noisyLogits() {
        return noisyLogits;
    }

    /** [tokens, experts] the standard deviation of the Gaussian noise, else null. */
    public float[] noiseStd() {
        return noiseStd;
    }

    /** [tokens, experts] the N(0, 1) sample that was drawn, else null. */
    public float[] noise() {
        return noise;
    }

    /** [tokens, hidden] the uniform multipliers of router jitter applied to the router's input, else null. */
    public float[] jitter() {
        return jitter;
    }

    /** [tokens, k] each token's chosen experts before capacity, best first; null unless token choice. */
    public int[] choices() {
        return choices;
    }

    /** The served assignments grouped by expert; null for Soft MoE. */
    public Dispatch dispatch() {
        return dispatch;
    }

    /**
     * An expert-choice predictor's training pass against this batch's selections (its loss and how its choices
     * compared); null unless an expert-choice router with a predictor trained.
     */
    public ExpertChoicePredictor.Fit predictorFit() {
        return predictorFit;
    }

    /** Soft MoE's dispatch and combine weights; null otherwise. */
    public SoftDispatch soft() {
        return soft;
    }

    /** Assignments asked for (tokens · k for token choice, tokens for expert choice). */
    public int requested() {
        return requested;
    }

    /** Choices not served (token choice), or tokens that no expert took (expert choice). */
    public int dropped() {
        return dropped;
    }

    /** Choices served by a later preference because their first expert was full. */
    public int rerouted() {
        return rerouted;
    }

    /** Length of the sequences the tokens form (the batch is tokens / sequenceLength sequences of it). */
    public int sequenceLength() {
        return sequenceLength;
    }

    public void sequenceLength(int length) {
        if (length < 1 || tokens % length != 0) {
            throw new IllegalArgumentException("sequence length " + length + " does not divide " + tokens + " tokens");
        }
        this.sequenceLength = length;
    }

    /**
     * [tokens, experts] the router's probability of each expert from the clean logits: softmax for softmax
     * scoring, sigmoid scores normalised to sum 1 for sigmoid scoring (DeepSeek-V3's s'), combine weights summed
     * per expert for Soft MoE. This is the P of the Switch and sequence losses and of the statistics.
     */
    public float[] probabilities() {
        if (probabilities == null) {
            probabilities = soft != null ? softProbabilities() : RouterMath.probabilities(scoring, logits, tokens, experts);
        }
        return probabilities;
    }

    private float[] softProbabilities() {
        int e = soft.experts(), p = soft.slotsPerExpert(), s = soft.slots();
        float[] out = new float[tokens * e];
        for (int t = 0; t < tokens; t++) {
            for (int slot = 0; slot < s; slot++) {
                out[t * e + slot / p] += soft.combine()[t * s + slot];
            }
        }
        return out;
    }
}
