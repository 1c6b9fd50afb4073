package dev.moe4j.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RemainingTimeTest {
    @Test
    void theFirstStepsWarmUpIsLeftOutAndNothingIsGuessedBeforeThreeStepsAfterIt() {
        // The default run as it was seen: a first step of 20 s (JIT, threads, first touches), then 0.7 s a step.
        var eta = new RemainingTime();
        eta.step(20);
        assertTrue(Double.isNaN(eta.seconds(599, 7)), "nothing known after the warm-up step alone");
        eta.step(0.7);
        eta.step(0.7);
        assertTrue(Double.isNaN(eta.seconds(597, 7)));
        eta.step(0.7);
        assertEquals(596 * 0.7, eta.seconds(596, 7), 1e-9, "7 minutes, not the 3.3 hours that 20 s a step gives");
    }

    @Test
    void theEstimateFollowsTheRecentStepsAndCountsTheEvaluationsToCome() {
        var eta = new RemainingTime();
        eta.step(5);
        for (int i = 0; i < RemainingTime.WINDOW; i++) {
            eta.step(2);
        }
        for (int i = 0; i < RemainingTime.WINDOW; i++) {
            eta.step(1); // the machine got quieter: the older steps leave the window
        }
        assertEquals(100.0, eta.seconds(100, 0), 1e-9);
        eta.pause(4);
        eta.pause(6);
        assertEquals(100.0 + 3 * 5, eta.seconds(100, 3), 1e-9, "three more evaluations at their mean of 5 s");
    }

    @Test
    void pausesLeftCountsEvaluationsAndCheckpointsOnceEachAndTheOneAtTheEnd() {
        // Evaluations every 100 of 600 steps, saves with them: steps 200, 300, 400, 500 and the end are left.
        assertEquals(5, TrainingRun.pausesLeft(100, 600, 100, 0, true));
        assertEquals(1, TrainingRun.pausesLeft(599, 600, 100, 0, true), "only the end");
        // Saves every 50 and evaluations every 100: 150, 200 (both at once), 250, then the end.
        assertEquals(4, TrainingRun.pausesLeft(100, 300, 100, 50, true));
        // Without a validation split the evaluation steps do not pause unless they also save.
        assertEquals(1 + 3, TrainingRun.pausesLeft(100, 300, 100, 50, false));
        assertEquals(1, TrainingRun.pausesLeft(0, 600, 0, 0, true), "evaluation only at the end");
    }
}
