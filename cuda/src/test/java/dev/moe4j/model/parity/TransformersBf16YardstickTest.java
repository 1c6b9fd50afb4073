package dev.moe4j.model.parity;

import dev.moe4j.cuda.TransformersBf16;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The BF16 yardstick the GPU parity tests read (they skip without a GPU, this does not): a measurement for every
 * fixture model and train step they check, and one that is a rounding error, not a broken run.
 */
class TransformersBf16YardstickTest {
    @Test
    void everyFixtureTheGpuTestsCheckHasTransformersOwnBf16Errors() {
        for (String name : GpuArchitectureParityTest.cases()) {
            double e = TransformersBf16.logitsError(name);
            assertTrue(e > 1e-4 && e < 0.1, name + ": transformers' BF16 logits " + e + " from its float32");
        }
        for (String name : new String[] {"mixtral", "qwen2-moe"}) {
            double e = TransformersBf16.worstGradientError(name);
            assertTrue(e > 1e-3 && e < 0.5, name + ": transformers' BF16 step's worst gradient " + e);
        }
    }
}
