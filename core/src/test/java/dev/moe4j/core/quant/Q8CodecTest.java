package dev.moe4j.core.quant;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class Q8CodecTest {
    @Test
    void largestMagnitudeBecomes127AndHalvesRoundAwayFromZero() {
        float[] x = new float[32];
        x[0] = -254; // d = 2: the block's extreme maps to -127
        x[1] = 5;    // 2.5 -> 3 (C's roundf), where Math.round would give 3 too
        x[2] = -5;   // -2.5 -> -3 (Math.round would give -2)
        x[3] = 1;    // 0.5 -> 1
        MemorySegment block = MemorySegment.ofArray(new byte[34]);
        BlockCodec.of(DType.Q8_0).quantize(x, 0, block, 0, 1);
        assertEquals(2.0f, Float.float16ToFloat(block.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0)));
        assertEquals(-127, block.get(ValueLayout.JAVA_BYTE, 2));
        assertEquals(3, block.get(ValueLayout.JAVA_BYTE, 3));
        assertEquals(-3, block.get(ValueLayout.JAVA_BYTE, 4));
        assertEquals(1, block.get(ValueLayout.JAVA_BYTE, 5));
        assertEquals(0, block.get(ValueLayout.JAVA_BYTE, 6));
        float[] back = new float[32];
        BlockCodec.of(DType.Q8_0).dequantize(block, 0, back, 0, 1);
        assertEquals(-254, back[0]);
        assertEquals(6, back[1]);
        assertEquals(-6, back[2]);
    }

    @Test
    void tensorsOfBlocksConvertToAndFromF32WithinHalfAStep() {
        float[] values = new float[2 * 64];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.37) * (1 + i % 7);
        }
        Tensor q = Tensor.of(values, 2, 64).to(DType.Q8_0);
        assertEquals(4 * 34, q.byteSize());
        Tensor back = q.to(DType.F32);
        float[] decoded = back.toFloatArray();
        for (int b = 0; b < 4; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(values[b * 32 + j]));
            }
            for (int j = 0; j < 32; j++) {
                assertEquals(values[b * 32 + j], decoded[b * 32 + j], amax / 127 * 0.5001f + 1e-3f);
            }
        }
        assertEquals(decoded[70], q.getFloat(70));
        assertArrayEquals(decoded, q.slice(0, 2).toFloatArray());
        assertArrayEquals(java.util.Arrays.copyOfRange(decoded, 64, 128), q.select(1).toFloatArray());
    }
}
