package dev.moe4j.moe.stats;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.TopKRouter;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class RoutingStatsTest {
    /** Four tokens, two experts, top-1 with capacity 2: tokens 0, 1, 2 choose expert 0, token 3 expert 1. */
    @Test
    void measuresLoadDropsEntropyAndConfidence() {
        float a = (float) Math.log(3); // softmax(ln 3, 0) = (0.75, 0.25)
        float[] logits = {a, 0, a, 0, a, 0, 0, a};
        MoeConfig c = MoeConfig.builder(2, 1, 2, 1).capacity(Capacity.fixed(2)).build();
        Routing r = new TopKRouter(c, Tensor.zeros(2, 2), null, null, null).routeLogits(logits, 4);
        RoutingStats s = RoutingStats.of(r);
        assertArrayEquals(new int[] {2, 1}, s.tokensPerExpert());
        assertEquals(0.25, s.droppedFraction(), 1e-9);
        assertEquals(1, s.droppedTokens());
        assertEquals(Math.sqrt(0.25 / 2.25), s.loadCv(), 1e-6);       // loads 2, 1: mean 1.5, std 0.5
        assertEquals(2 / 1.5 - 1, s.maxViolation(), 1e-6);
        double h = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
        assertEquals(h, s.routerEntropy(), 1e-6);
        assertEquals(0.75, s.meanTopProbability(), 1e-6);
    }
}
