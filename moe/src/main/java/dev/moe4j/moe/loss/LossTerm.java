package dev.moe4j.moe.loss;

/** A balance loss with the coefficient it enters the training loss with. */
public record LossTerm(BalanceLoss loss, double coefficient) {
    public LossTerm {
        if (loss == null) {
            throw new IllegalArgumentException("loss must be set");
        }
    }
}
