package dev.moe4j.moe;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.moe.loss.AuxLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.TopKRouter;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A pass routed on a device makes its host routing, and the losses measured from it, when they are first asked for,
 * once; inside the memory scope of the pass only, since they are read from that scope's device memory.
 */
class MoeResultTest {
    private static final int E = 6, K = 2, TOKENS = 5;

    private static Routing routing() {
        MoeConfig c = MoeConfig.builder(8, 4, E, K).build();
        float[] logits = new float[TOKENS * E];
        var random = new Random(4);
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) random.nextGaussian();
        }
        return new TopKRouter(c, Tensor.zeros(E, 8), null, null, null).routeLogits(logits, TOKENS);
    }

    @Test
    void theRoutingAndLossesOfAPassRoutedOnADeviceAreMadeOnceWhenFirstAskedFor() {
        var made = new AtomicInteger();
        Routing routing = routing();
        double switchLoss = new SwitchLoss(SwitchLoss.Form.TRANSFORMERS).value(routing);
        try (var scope = MemoryScope.open()) {
            MoeResult result = MoeResult.routedOnDevice(Tensor.zeros(TOKENS, 8), () -> {
                made.incrementAndGet();
                return routing;
            }, r -> List.of(new AuxLoss("switch", 0.5, new SwitchLoss(SwitchLoss.Form.TRANSFORMERS).value(r))));
            assertEquals(0, made.get(), "nothing made before it is asked for");
            assertEquals(0.5 * switchLoss, result.auxLoss(), 1e-12);
            assertSame(routing, result.routing());
            assertEquals(K * TOKENS, java.util.Arrays.stream(result.stats().tokensPerExpert()).sum());
            assertEquals(1, made.get(), "made once");
        }
    }

    @Test
    void aPassRoutedOnADeviceRefusesItsRoutingAfterItsScopeClosed() {
        MoeResult result;
        try (var scope = MemoryScope.open()) {
            result = MoeResult.routedOnDevice(Tensor.zeros(TOKENS, 8), MoeResultTest::routing, r -> List.of());
        }
        var e = assertThrows(IllegalStateException.class, result::routing);
        assertTrue(e.getMessage().contains("memory scope"), e.getMessage());
    }
}
