package dev.moe4j.core.quant;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BlockCodecTest {
    @Test
    void q4StoresTheSignedExtremeExactlyAsCodeZero() {
        float[] x = new float[32];
        x[3] = 6;
        x[7] = -4;
        x[9] = -6;   // the opposite extreme, 8 steps: beyond code 15 (+7), capped there
        x[20] = 3;
        MemorySegment block = MemorySegment.ofArray(new byte[18]);
        BlockCodec.of(DType.Q4_0).quantize(x, 0, block, 0, 1);
        assertEquals(-0.75f, Float.float16ToFloat(block.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0)));
        assertEquals(0, block.get(ValueLayout.JAVA_BYTE, 2 + 3) & 0xF);
        assertEquals(8 - 4, (block.get(ValueLayout.JAVA_BYTE, 2 + 4) & 0xFF) >>> 4, "element 20: 3/-0.75 = -4");
        float[] back = new float[32];
        BlockCodec.of(DType.Q4_0).dequantize(block, 0, back, 0, 1);
        assertEquals(6, back[3]);
        assertEquals(-3.75f, back[7], "-4 / -0.75 = 5.33 steps: code 8 + 5");
        assertEquals(3, back[20]);
        assertEquals(-5.25f, back[9]);
    }

    @Test
    void mxfp4DecodesE2M1ValuesTimesTwoToTheExponentMinus127() {
        MemorySegment block = MemorySegment.ofArray(new byte[17]);
        block.set(ValueLayout.JAVA_BYTE, 0, (byte) 128); // 2^1
        block.set(ValueLayout.JAVA_BYTE, 1, (byte) 0xF7); // element 0: code 7 (6.0), element 16: code 15 (-6.0)
        block.set(ValueLayout.JAVA_BYTE, 2, (byte) 0x91); // element 1: code 1 (0.5), element 17: code 9 (-0.5)
        float[] out = new float[32];
        BlockCodec.of(DType.MXFP4).dequantize(block, 0, out, 0, 1);
        assertEquals(12f, out[0]);
        assertEquals(-12f, out[16]);
        assertEquals(1f, out[1]);
        assertEquals(-1f, out[17]);
        assertEquals(0f, out[2]);
    }

    @Test
    void mxfp4ChoosesTheExponentThatLeavesTheExtremeTwoBinadesOfRoom() {
        float[] x = new float[32];
        x[0] = 5;    // log2 = 2.32: e = 127 + 2 - 2, so the values step by 2^0 near the top (4, 6)
        x[1] = -1.3f;
        MemorySegment block = MemorySegment.ofArray(new byte[17]);
        BlockCodec.of(DType.MXFP4).quantize(x, 0, block, 0, 1);
        assertEquals(127, block.get(ValueLayout.JAVA_BYTE, 0) & 0xFF);
        float[] back = new float[32];
        BlockCodec.of(DType.MXFP4).dequantize(block, 0, back, 0, 1);
        assertEquals(4f, back[0], "5 is a tie between 4 and 6: the lower code wins");
        assertEquals(-1.5f, back[1]);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "MXFP4", "Q4_K", "Q5_K", "Q6_K"})
    void tensorsRoundTripWithinTheTypesResolution(DType type) {
        SplittableRandom random = new SplittableRandom(7);
        float[] values = new float[2 * 512];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian() * (i < 512 ? 1 : 0.01f);
        }
        Tensor q = Tensor.of(values, 2, 512).to(type);
        assertEquals(type.byteCount(values.length), q.byteSize());
        float[] back = q.to(DType.F32).toFloatArray();
        // relative RMSE of a Gaussian: roughly one step (range / levels) over sqrt(12), with room for the scales
        double bound = switch (type) {
            case Q8_0 -> 0.01;
            case Q6_K -> 0.02;
            case Q5_K -> 0.04;
            case Q4_0, Q4_K -> 0.12;
            case MXFP4 -> 0.2;
            default -> throw new AssertionError(type);
        };
        for (int row = 0; row < 2; row++) {
            double error = 0;
            double power = 0;
            for (int i = 0; i < 512; i++) {
                double d = values[512 * row + i] - back[512 * row + i];
                error += d * d;
                power += (double) values[512 * row + i] * values[512 * row + i];
            }
            assertTrue(Math.sqrt(error / power) < bound, type + " row " + row + ": " + Math.sqrt(error / power));
        }
        assertEquals(back[700], q.getFloat(700));
        assertArrayEquals(java.util.Arrays.copyOfRange(back, 512, 1024), q.select(1).toFloatArray());
    }
}
