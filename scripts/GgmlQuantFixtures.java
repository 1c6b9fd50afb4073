import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Writes the block-quantisation fixtures of core's tests (core/src/test/resources/ggml-quants) with ggml itself:
 * the same input floats quantised by ggml's {@code ggml_quantize_chunk} (checked equal to its
 * {@code quantize_row_*_ref}) and dequantised by its {@code dequantize_row_*}, and random blocks dequantised by ggml.
 * The README.md committed beside them says what each file holds.
 *
 * <p>Run it as a single-file program (Java 25, no moe4j classes needed):
 * {@code java --enable-native-access=ALL-UNNAMED scripts/GgmlQuantFixtures.java LIBGGML_BASE_SO OUT_DIR}, e.g. with
 * libggml-base.so of the npm package {@code @node-llama-cpp/linux-x64} 3.22.1 (bins/linux-x64/).
 */
public class GgmlQuantFixtures {
    /** name, ggml_type id, elements per block, bytes per block. */
    record Type(String name, int id, int elements, int bytes) {
        /** ggml's spelling in its function names (q4_K). */
        String symbol() {
            return name.endsWith("_k") ? name.substring(0, name.length() - 1) + "K" : name;
        }
    }

    static final List<Type> TYPES = List.of(
            new Type("q8_0", 8, 32, 34), new Type("q4_0", 2, 32, 18), new Type("mxfp4", 39, 32, 17),
            new Type("q4_k", 12, 256, 144), new Type("q5_k", 13, 256, 176), new Type("q6_k", 14, 256, 210));
    static final int ROW = 256;
    static final int RANDOM_BLOCKS = 4;

    public static void main(String[] args) throws Throwable {
        Path library = Path.of(args[0]);
        Path out = Path.of(args[1]);
        Files.createDirectories(out);
        float[] input = inputs();
        write(out.resolve("input.f32"), floats(input));
        Linker linker = Linker.nativeLinker();
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup ggml = SymbolLookup.libraryLookup(library, arena);
            MethodHandle chunk = linker.downcallHandle(ggml.find("ggml_quantize_chunk").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                            ValueLayout.ADDRESS));
            MemorySegment src = arena.allocate(4L * input.length, 16);
            MemorySegment.copy(input, 0, src, ValueLayout.JAVA_FLOAT, 0, input.length);
            for (Type type : TYPES) {
                MethodHandle reference = rowFunction(linker, ggml, "quantize_row_" + type.symbol() + "_ref");
                MethodHandle dequantize = rowFunction(linker, ggml, "dequantize_row_" + type.symbol());
                long blocks = input.length / type.elements();
                MemorySegment quantized = arena.allocate(blocks * type.bytes(), 16);
                long written = (long) chunk.invokeExact(type.id(), src, quantized, 0L, (long) (input.length / ROW),
                        (long) ROW, MemorySegment.NULL);
                if (written != quantized.byteSize()) {
                    throw new IllegalStateException(type.name() + ": ggml_quantize_chunk wrote " + written);
                }
                MemorySegment byReference = arena.allocate(quantized.byteSize(), 16);
                reference.invokeExact(src, byReference, (long) input.length);
                if (quantized.mismatch(byReference) >= 0) {
                    throw new IllegalStateException(type.name() + ": ggml_quantize_chunk and the reference differ");
                }
                MemorySegment decoded = arena.allocate(4L * input.length, 16);
                dequantize.invokeExact(quantized, decoded, (long) input.length);
                write(out.resolve(type.name() + ".ggml"), quantized.toArray(ValueLayout.JAVA_BYTE));
                write(out.resolve(type.name() + ".dequant.f32"), decoded.toArray(ValueLayout.JAVA_BYTE));

                MemorySegment random = MemorySegment.ofArray(randomBlocks(type));
                MemorySegment nativeRandom = arena.allocate(random.byteSize(), 16).copyFrom(random);
                long n = (long) RANDOM_BLOCKS * type.elements();
                MemorySegment randomDecoded = arena.allocate(4 * n, 16);
                dequantize.invokeExact(nativeRandom, randomDecoded, n);
                write(out.resolve(type.name() + ".random.ggml"), nativeRandom.toArray(ValueLayout.JAVA_BYTE));
                write(out.resolve(type.name() + ".random.dequant.f32"), randomDecoded.toArray(ValueLayout.JAVA_BYTE));
            }
        }
    }

    private static MethodHandle rowFunction(Linker linker, SymbolLookup ggml, String name) {
        return linker.downcallHandle(ggml.find(name).orElseThrow(() -> new IllegalStateException("no " + name)),
                FunctionDescriptor.ofVoid(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    }

    /**
     * Chunks of 32 floats in the patterns that exercise the quantisers' branches: Gaussians of several scales,
     * zeros, an outlier, one-signed blocks (the K-quants' minimum), constants, half-integer ties for Q8_0 and
     * Q4_0's rounding, and block maxima just below powers of two (MXFP4's exponent from log2f).
     */
    static float[] inputs() {
        SplittableRandom random = new SplittableRandom(20261207L);
        List<float[]> chunks = new ArrayList<>();
        double[] sigmas = {1, 0.02, 1e-3, 100};
        for (int round = 0; round < 3; round++) {
            for (double sigma : sigmas) {
                chunks.add(gaussian(random, sigma));
            }
            chunks.add(new float[32]);
            float[] outlier = gaussian(random, 1);
            outlier[random.nextInt(32)] *= 50;
            chunks.add(outlier);
            float[] positive = new float[32];
            float[] negative = new float[32];
            for (int i = 0; i < 32; i++) {
                positive[i] = (float) random.nextDouble(0.5, 1.5);
                negative[i] = (float) random.nextDouble(-3, -1);
            }
            chunks.add(positive);
            chunks.add(negative);
            float[] ties8 = new float[32];
            float[] ties4 = new float[32];
            for (int i = 0; i < 32; i++) {
                ties8[i] = random.nextInt(-126, 126) + 0.5f;
                ties4[i] = random.nextInt(-8, 7) + 0.5f;
            }
            ties8[random.nextInt(32)] = round == 1 ? -127 : 127;
            ties4[random.nextInt(32)] = round == 1 ? 8 : -8;
            chunks.add(ties8);
            chunks.add(ties4);
            float[] constant = new float[32];
            java.util.Arrays.fill(constant, round == 0 ? -0.75f : 0.75f * round);
            chunks.add(constant);
            chunks.add(gaussian(random, 0.5 * (round + 1)));
        }
        int[] exponents = {-3, 0, 2, 3, 4, 5, 7, 8, 10, 12, 16, 20};
        for (int k : exponents) {
            for (int below = 1; below <= 2; below++) {
                float[] chunk = gaussian(random, Math.scalb(0.2, k));
                float peak = Math.scalb(1f, k);
                for (int j = 0; j < below; j++) {
                    peak = Math.nextDown(peak);
                }
                for (int i = 0; i < 32; i++) {
                    chunk[i] = Math.max(-peak * 0.99f, Math.min(peak * 0.99f, chunk[i]));
                }
                chunk[random.nextInt(32)] = random.nextBoolean() ? peak : -peak;
                chunks.add(chunk);
            }
        }
        while (chunks.size() % (ROW / 32) != 0) {
            chunks.add(gaussian(random, 1));
        }
        float[] all = new float[32 * chunks.size()];
        for (int c = 0; c < chunks.size(); c++) {
            System.arraycopy(chunks.get(c), 0, all, 32 * c, 32);
        }
        return all;
    }

    private static float[] gaussian(SplittableRandom random, double sigma) {
        float[] chunk = new float[32];
        for (int i = 0; i < 32; i++) {
            chunk[i] = (float) (random.nextGaussian() * sigma);
        }
        return chunk;
    }

    /** Random bytes, with every F16 scale field replaced by a random finite F16 of moderate size. */
    static byte[] randomBlocks(Type type) {
        SplittableRandom random = new SplittableRandom(type.id() * 7919L);
        byte[] bytes = new byte[RANDOM_BLOCKS * type.bytes()];
        random.nextBytes(bytes);
        ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int[] halves = switch (type.name()) {
            case "q8_0", "q4_0" -> new int[]{0};
            case "q4_k", "q5_k" -> new int[]{0, 2};
            case "q6_k" -> new int[]{208};
            default -> new int[0];
        };
        for (int b = 0; b < RANDOM_BLOCKS; b++) {
            for (int h : halves) {
                float scale = (float) (random.nextDouble(-1, 1) * Math.pow(2, random.nextInt(-12, 4)));
                buffer.putShort(b * type.bytes() + h, Float.floatToFloat16(scale));
            }
        }
        return bytes;
    }

    private static byte[] floats(float[] values) {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(values);
        return buffer.array();
    }

    private static void write(Path path, byte[] bytes) throws IOException {
        Files.write(path, bytes);
    }
}
