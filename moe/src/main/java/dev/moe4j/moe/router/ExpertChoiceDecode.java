package dev.moe4j.moe.router;

/**
 * How an expert-choice router routes at inference. Expert choice picks each expert's top tokens over the whole
 * batch, so a token's routing depends on the tokens after it; autoregressive decoding cannot see those.
 */
public enum ExpertChoiceDecode {
    /**
     * Causal: token t goes to expert e when its score reaches the expert's threshold, a running average (kept
     * while training) of the score of the last token each expert took. A token's routing depends on itself only.
     */
    THRESHOLD,
    /**
     * Causal: a small predictor beside the router ({@link ExpertChoicePredictor}), trained on the batch's actual
     * selections, says which experts would have taken the token; they take it with the router's gate weights.
     */
    PREDICTOR,
    /** As in training: each expert takes its top-C tokens among those given (for encoders; not causal). */
    BATCH_TOP_C
}
