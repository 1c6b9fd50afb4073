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

    @Test
    void e4m3CodesHaveTheValuesOfTheOcpFormat() {
        assertEquals(448f, E4m3BlockCodec.value(0x7E), "largest finite");
        assertEquals(-448f, E4m3BlockCodec.value(0xFE));
        assertEquals(1f, E4m3BlockCodec.value(0x38), "exponent 7 is 2^0");
        assertEquals(1.5f, E4m3BlockCodec.value(0x3C));
        assertEquals(0x1p-6f, E4m3BlockCodec.value(0x08), "smallest normal");
        assertEquals(0x1p-9f, E4m3BlockCodec.value(0x01), "smallest subnormal");
        assertEquals(0.875f * 0x1p-6f, E4m3BlockCodec.value(0x07), "largest subnormal");
        assertTrue(Float.isNaN(E4m3BlockCodec.value(0x7F)) && Float.isNaN(E4m3BlockCodec.value(0xFF)));
        for (int code = 0; code < 256; code++) {
            if (!E4m3BlockCodec.isNaN(code)) {
                assertEquals(code, E4m3BlockCodec.encode(E4m3BlockCodec.value(code)), "code " + code);
            }
        }
    }

    @Test
    void e4m3EncodingRoundsToTheNearestCodeTiesToEvenAndSaturates() {
        assertEquals(0x38, E4m3BlockCodec.encode(1.0625f), "halfway between 1 and 1.125: the even code");
        assertEquals(0x3A, E4m3BlockCodec.encode(1.1875f), "halfway between 1.125 and 1.25: the even code");
        assertEquals(0x39, E4m3BlockCodec.encode(1.07f));
        assertEquals(0x00, E4m3BlockCodec.encode(0x1p-10f), "half the smallest subnormal: to zero (even)");
        assertEquals(0x02, E4m3BlockCodec.encode(1.5f * 0x1p-9f), "halfway between subnormals 1 and 2: 2");
        assertEquals(0x08, E4m3BlockCodec.encode(0x1p-6f - 0x1p-12f), "the last subnormal step rounds up to normal");
        assertEquals(0x7E, E4m3BlockCodec.encode(1e6f));
        assertEquals(0xFE, E4m3BlockCodec.encode(-470f));
        assertEquals(0x80, E4m3BlockCodec.encode(-0f));
        var r = new SplittableRandom(3);
        for (int i = 0; i < 20_000; i++) {
            float x = (float) (r.nextGaussian() * Math.scalb(1.0, r.nextInt(-12, 9)));
            int code = E4m3BlockCodec.encode(x);
            float error = Math.abs(E4m3BlockCodec.value(code) - x);
            for (int other = 0; other < 256; other++) {
                if (!E4m3BlockCodec.isNaN(other) && Math.abs(x) <= 448) {
                    assertTrue(error <= Math.abs(E4m3BlockCodec.value(other) - x), x + ": code " + code
                            + " is farther than " + other);
                }
            }
        }
    }

    @Test
    void e4m3BlocksCarryTheirScaleAndDecodeWithOneRounding() {
        float[] x = new float[64];
        var r = new SplittableRandom(5);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian() * (i < 32 ? 0.01f : 3f);
        }
        MemorySegment blocks = MemorySegment.ofArray(new byte[72]);
        BlockCodec.of(DType.F8_E4M3_B32).quantize(x, 0, blocks, 0, 2);
        float[] back = new float[64];
        BlockCodec.of(DType.F8_E4M3_B32).dequantize(blocks, 0, back, 0, 2);
        for (int b = 0; b < 2; b++) {
            float d = blocks.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 36L * b);
            float amax = 0;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[32 * b + j]));
            }
            assertEquals(amax / 448f, d);
            for (int j = 0; j < 32; j++) {
                int code = blocks.get(ValueLayout.JAVA_BYTE, 36L * b + 4 + j) & 0xFF;
                assertEquals(E4m3BlockCodec.value(code) * d, back[32 * b + j]);
                // E4M3 keeps 3 mantissa bits: within half a step, 1/16 relative, of the value (or of 2^-9·d near 0)
                assertTrue(Math.abs(back[32 * b + j] - x[32 * b + j])
                        <= Math.max(Math.abs(x[32 * b + j]) / 16, 0x1p-10f * d) * 1.0001f, "element " + j);
            }
        }
    }
}
