package dev.moe4j.train;

import dev.moe4j.core.BadInputException;

/**
 * A run whose loss stopped being a finite number. For {@code moe4j train} it is the user's problem to fix (a lower
 * learning rate, a longer warmup); an experiment about stability records it as the run's outcome instead.
 *
 * @see TrainingRun
 */
public final class TrainingDiverged extends BadInputException {
    private final long step;
    private final double loss;

    public TrainingDiverged(long step, double loss) {
        super("the loss became " + loss + " at step " + step + ": lower --lr or raise --warmup");
        this.step = step;
        this.loss = loss;
    }

    /** The step whose loss was not finite. */
    public long step() {
        return step;
    }

    public double loss() {
        return loss;
    }
}
