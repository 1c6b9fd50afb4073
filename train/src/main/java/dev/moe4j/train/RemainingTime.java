package dev.moe4j.train;

/**
 * How long a run still needs, from what its steps took so far in this process. The first step is left out: it pays
 * once for the JIT, the thread pool and the first touch of every buffer (on the default run it took tens of times a
 * later step, and an estimate that counted it read hours for a run of minutes). The rest is the mean of the last
 * {@value #WINDOW} steps, so that the estimate follows the machine's load, plus the evaluations and checkpoints still
 * to come at the mean time they took so far. Unknown (NaN) until {@value #MIN_STEPS} steps after the first were timed.
 */
final class RemainingTime {
    static final int WINDOW = 20;
    static final int MIN_STEPS = 3;

    private final double[] recent = new double[WINDOW];
    private int steps;
    private double pauseSeconds;
    private int pauses;

    /** A training step of this process took {@code seconds}. */
    void step(double seconds) {
        if (steps > 0) {
            recent[(steps - 1) % WINDOW] = seconds;
        }
        steps++;
    }

    /** An evaluation and/or checkpoint between steps took {@code seconds}. */
    void pause(double seconds) {
        pauseSeconds += seconds;
        pauses++;
    }

    /** The seconds that {@code stepsLeft} more steps and {@code pausesLeft} evaluations or saves need, or NaN. */
    double seconds(long stepsLeft, long pausesLeft) {
        int timed = Math.min(steps - 1, WINDOW);
        if (timed < MIN_STEPS) {
            return Double.NaN;
        }
        double sum = 0;
        for (int i = 0; i < timed; i++) {
            sum += recent[i];
        }
        double pause = pauses == 0 ? 0 : pauseSeconds / pauses;
        return stepsLeft * (sum / timed) + pausesLeft * pause;
    }
}
