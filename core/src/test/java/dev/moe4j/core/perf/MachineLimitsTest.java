package dev.moe4j.core.perf;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Checks what the measurements report, not how fast this machine is. */
class MachineLimitsTest {
    @Test
    void tinyMeasurementGivesPositiveFiniteLimits() {
        var limits = MachineLimits.measure(0.005, 4L << 20, 1L << 20);
        assertTrue(limits.peakGflops() > 0 && Double.isFinite(limits.peakGflops()), limits.toString());
        assertTrue(limits.bandwidthGBs() > 0 && Double.isFinite(limits.bandwidthGBs()), limits.toString());
        assertTrue(limits.threads() >= 1);
    }

    @Test
    void bestTakesTheHigherOfEachLimitAndDifferenceIsRelative() {
        var a = new MachineLimits(200, 20, 2);
        var b = new MachineLimits(150, 25, 2);
        assertEquals(new MachineLimits(200, 25, 2), a.best(b));
        assertTrue(a.differsFrom(b, 0.15));
        assertFalse(a.differsFrom(new MachineLimits(190, 19, 2), 0.15));
    }

    @Test
    void timingCountsAtLeastTheAskedIterationsAndOrdersBestBeforeMedian() {
        int[] calls = {0};
        var t = Timing.measure(() -> calls[0]++, 3, 7, 0);
        assertEquals(7, t.iterations());
        assertEquals(10, calls[0]);
        assertTrue(t.bestSeconds() <= t.medianSeconds());
    }
}
