package dev.moe4j.core.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.assertEquals;

class WideningTest {
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void everySixteenBitPatternWidensExactly(DType type) {
        // all 65536 patterns, subnormals, infinities and NaNs included, through the vector path of Gather
        Tensor table = Tensor.zeros(type, 1, 65536);
        for (int bits = 0; bits < 65536; bits++) {
            table.segment().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, bits * 2L, (short) bits);
        }
        Tensor out = Tensor.zeros(1, 65536);
        Gather.rows(out, table, new int[] {0});
        for (int bits = 0; bits < 65536; bits++) {
            float expected = type == DType.BF16 ? Float.intBitsToFloat(bits << 16) : Float.float16ToFloat((short) bits);
            float actual = out.getFloat(bits);
            if (Float.isNaN(expected)) {
                assertEquals(true, Float.isNaN(actual), "pattern " + Integer.toHexString(bits));
            } else {
                assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(actual), "pattern " + Integer.toHexString(bits));
            }
        }
    }
}
