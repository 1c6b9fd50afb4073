package dev.moe4j.moe.loss;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.stats.RoutingStats;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

class BiasBalancerTest {
    @Test
    void movesEachBiasOneStepAgainstItsLoadViolationOverTheObservedPasses() {
        Tensor bias = Tensor.zeros(3);
        var balancer = new BiasBalancer(bias, 0.1);
        balancer.observe(stats(6, 2, 4));
        balancer.observe(stats(2, 2, 2)); // accumulated: 8, 4, 6 (mean 6)
        balancer.step();
        assertArrayEquals(new float[] {-0.1f, 0.1f, 0f}, bias.toFloatArray(), 1e-7f);
        balancer.step(); // nothing observed since: every load equals the mean
        assertArrayEquals(new float[] {-0.1f, 0.1f, 0f}, bias.toFloatArray(), 1e-7f);
    }

    private static RoutingStats stats(int... load) {
        return new RoutingStats(0, load, 0, 0, 0, 0, 0, 0, null);
    }
}
