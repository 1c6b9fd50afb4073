package dev.moe4j.moe.dispatch;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class CapacityTest {
    @Test
    void switchRuleTruncatesFactorTimesTokensOverExperts() {
        // Mesh TensorFlow: int(group_size · capacity_factor / experts).
        assertEquals(2, Capacity.switchFactor(1.0).perExpert(10, 1, 4));
        assertEquals(3, Capacity.switchFactor(1.25).perExpert(10, 1, 4));
        assertEquals(5, Capacity.switchFactor(1.0).perExpert(10, 2, 4));
    }

    @Test
    void vmoeRuleRoundsUpToAMultipleOfFour() {
        assertEquals(12, Capacity.vmoeFactor(1.25).perExpert(16, 2, 4)); // ceil(10) → 12
        assertEquals(8, Capacity.vmoeFactor(1.0).perExpert(16, 2, 4));   // exactly 8 stays 8
        assertEquals(4, Capacity.vmoeFactor(1.0).perExpert(16, 1, 16));  // 1 → 4
    }

    @Test
    void capacityIsBoundedByTheMinimumAndByTheTokenCount() {
        assertEquals(4, Capacity.switchFactor(1.0).withMinimum(4).perExpert(8, 1, 8));
        assertEquals(6, Capacity.fixed(100).perExpert(6, 1, 2));
        assertEquals(6, Capacity.dropless().perExpert(6, 2, 2));
    }

    @Test
    void expertChoiceCapacityIsTokensTimesFactorOverExperts() {
        assertEquals(5, Capacity.factor(1.25, Capacity.Rounding.ROUND, 1).perExpert(16, 1, 4));
        assertEquals(8, Capacity.factor(2.0, Capacity.Rounding.CEIL, 1).perExpert(16, 1, 4));
    }
}
