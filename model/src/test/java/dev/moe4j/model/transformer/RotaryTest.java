package dev.moe4j.model.transformer;

import dev.moe4j.core.DType;
import dev.moe4j.core.FloatFormats;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.model.config.RopeConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** RoPE frequencies are exact in F32 whatever the checkpoint's dtype, unless transformers' rounding is asked for. */
class RotaryTest {
    private static final int DIM = 64;
    private static final int POSITIONS = 128;

    private static double maxAngleDifference(RopeTable a, RopeTable b) {
        double worst = 0;
        for (int p = 0; p < POSITIONS; p++) {
            for (int i = 0; i < DIM / 2; i++) {
                worst = Math.max(worst, Math.abs(a.cos(p, i) - b.cos(p, i)) + Math.abs(a.sin(p, i) - b.sin(p, i)));
            }
        }
        return worst;
    }

    @Test
    void aBf16CheckpointGetsTheExactFrequenciesByDefault() {
        RopeConfig rope = RopeConfig.of(1_000_000.0);
        var exact = new RopeTable(RopeFrequencies.standard(1_000_000.0, DIM), POSITIONS);
        for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            RopeTable table = new Rotary(rope, DIM, 4096, dtype).table(POSITIONS);
            assertEquals(0, maxAngleDifference(exact, table), dtype + " checkpoint");
        }
    }

    @Test
    void transformersRoundingIsReproducedOnlyWhenAskedFor() {
        RopeConfig rope = RopeConfig.of(1_000_000.0).withWeightDtypeFrequencies(true);
        float[] inv = RopeFrequencies.standard(1_000_000.0, DIM).invFreq().clone();
        for (int i = 0; i < inv.length; i++) {
            inv[i] = FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(inv[i]));
        }
        var rounded = new RopeTable(inv, 1f, POSITIONS);
        var exact = new RopeTable(RopeFrequencies.standard(1_000_000.0, DIM), POSITIONS);
        RopeTable table = new Rotary(rope, DIM, 4096, DType.BF16).table(POSITIONS);
        assertEquals(0, maxAngleDifference(rounded, table));
        // By position 127 the rounded angles are visibly off: what made BF16 checkpoints' log-probabilities drift.
        assertTrue(maxAngleDifference(exact, table) > 1e-2, "rounding changes the angles");
        assertEquals(0, maxAngleDifference(exact, new Rotary(rope, DIM, 4096, DType.F32).table(POSITIONS)),
                "an F32 checkpoint has nothing to round");
    }
}
