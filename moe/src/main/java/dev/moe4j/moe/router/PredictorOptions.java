package dev.moe4j.moe.router;

/**
 * The shape and training of an expert-choice router's predictor ({@link ExpertChoicePredictor}).
 *
 * @param width        the hidden width of the MLP (hidden → width → experts); 0 for a linear probe (hidden → experts)
 * @param stopGradient the predictor's loss trains the predictor only, as Mixture-of-Depths' auxiliary predictor;
 *                     false lets its gradient flow into the router's input, and so into the main network
 * @param topK         at inference, send each token to its topK experts by predicted probability; 0 sends it to
 *                     every expert whose predicted probability reaches 0.5
 * @param coefficient  weight of the predictor's binary cross-entropy in the training loss
 */
public record PredictorOptions(int width, boolean stopGradient, int topK, double coefficient) {
    /** An MLP of width 64, gradient stopped, probability 0.5, loss weight 0.01. */
    public static PredictorOptions defaults() {
        return new PredictorOptions(64, true, 0, 0.01);
    }

    /** Whether the predictor is hidden → experts with no hidden layer. */
    public boolean linearProbe() {
        return width == 0;
    }
}
