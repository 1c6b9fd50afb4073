package dev.moe4j.train.optim;

/**
 * The learning rate at each step: a linear warmup from 0 to the peak, then a cosine decay to
 * {@code minRatio}·peak at {@code totalSteps} (nanoGPT's schedule); a constant rate when warmup is 0 and the
 * decay is off.
 */
public record LearningRateSchedule(double peak, int warmupSteps, int totalSteps, double minRatio, boolean cosine) {
    public LearningRateSchedule {
        if (peak < 0 || warmupSteps < 0 || totalSteps < 0 || minRatio < 0 || minRatio > 1) {
            throw new IllegalArgumentException("bad learning-rate schedule: " + this);
        }
    }

    /** A constant rate (fine-tuning parity, tests). */
    public static LearningRateSchedule constant(double lr) {
        return new LearningRateSchedule(lr, 0, 0, 1, false);
    }

    /** Warmup then cosine decay to 10 % of the peak. */
    public static LearningRateSchedule warmupCosine(double peak, int warmupSteps, int totalSteps) {
        return new LearningRateSchedule(peak, warmupSteps, totalSteps, 0.1, true);
    }

    /** The rate for step {@code step} (0-based: the first update uses step 0). */
    public double at(long step) {
        if (step < warmupSteps) {
            return peak * (step + 1) / warmupSteps;
        }
        if (!cosine || totalSteps <= warmupSteps) {
            return peak;
        }
        double progress = Math.min(1.0, (double) (step - warmupSteps) / (totalSteps - warmupSteps));
        double min = peak * minRatio;
        return min + 0.5 * (1 + Math.cos(Math.PI * progress)) * (peak - min);
    }
}
