package dev.moe4j.moe.loss;

/** The value of one auxiliary loss in a forward pass; it adds {@code coefficient · value} to the training loss. */
public record AuxLoss(String name, double coefficient, double value) {
    public double weighted() {
        return coefficient * value;
    }
}
