package dev.moe4j.core.quant;

import dev.moe4j.core.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every block codec against ggml's own quantisation and dequantisation of the same floats (the fixtures in
 * resources/ggml-quants, made by scripts/GgmlQuantFixtures.java with llama.cpp's libggml-base; see the README there).
 */
class GgmlParityTest {
    private static final String DIR = "/ggml-quants/";

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "MXFP4", "Q4_K", "Q5_K", "Q6_K"})
    void dequantisingGgmlsBlocksGivesGgmlsFloatsBitForBit(DType type) throws IOException {
        for (String set : new String[]{"", ".random"}) {
            byte[] blocks = resource(name(type) + set + ".ggml");
            float[] expected = floats(resource(name(type) + set + ".dequant.f32"));
            float[] actual = new float[expected.length];
            BlockCodec.of(type).dequantize(MemorySegment.ofArray(blocks), 0, actual, 0,
                    blocks.length / type.blockBytes());
            for (int i = 0; i < expected.length; i++) {
                assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                        type + set + " element " + i + ": ggml " + expected[i] + ", moe4j " + actual[i]);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "MXFP4", "Q4_K", "Q5_K", "Q6_K"})
    void quantisingTheInputsGivesGgmlsBlocksByteForByte(DType type) throws IOException {
        float[] input = floats(resource("input.f32"));
        byte[] expected = resource(name(type) + ".ggml");
        byte[] actual = quantize(type, input);
        for (int i = 0; i < expected.length; i++) {
            int block = i / type.blockBytes();
            assertEquals(expected[i], actual[i], type + " block " + block + " byte " + i % type.blockBytes());
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_K", "Q5_K", "Q6_K"})
    void kQuantsReconstructNoWorseThanGgml(DType type) throws IOException {
        float[] input = floats(resource("input.f32"));
        float[] ggml = floats(resource(name(type) + ".dequant.f32"));
        float[] ours = new float[input.length];
        BlockCodec.of(type).dequantize(MemorySegment.ofArray(quantize(type, input)), 0, ours, 0,
                input.length / type.blockElements());
        double ggmlError = rmse(input, ggml);
        double ourError = rmse(input, ours);
        assertTrue(ourError <= ggmlError, type + ": RMSE " + ourError + " against ggml's " + ggmlError);
    }

    static byte[] quantize(DType type, float[] input) {
        int blocks = input.length / type.blockElements();
        MemorySegment out = MemorySegment.ofArray(new byte[blocks * type.blockBytes()]);
        BlockCodec.of(type).quantize(input, 0, out, 0, blocks);
        return out.toArray(ValueLayout.JAVA_BYTE);
    }

    private static double rmse(float[] a, float[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            sum += d * d;
        }
        return Math.sqrt(sum / a.length);
    }

    static String name(DType type) {
        return type.name().toLowerCase(java.util.Locale.ROOT);
    }

    static byte[] resource(String file) throws IOException {
        try (InputStream in = GgmlParityTest.class.getResourceAsStream(DIR + file)) {
            if (in == null) {
                throw new IOException("missing test resource " + DIR + file);
            }
            return in.readAllBytes();
        }
    }

    static float[] floats(byte[] bytes) {
        float[] values = new float[bytes.length / 4];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        return values;
    }
}
