package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.FloatFormats;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

class GgufWriterTest {
    @TempDir
    Path dir;

    static Tensor random(DType dtype, long seed, int... shape) {
        Tensor t = Tensor.zeros(dtype, shape);
        var random = new Random(seed);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) random.nextGaussian());
        }
        return t;
    }

    static byte[] bytes(Tensor t) {
        byte[] b = new byte[(int) t.byteSize()];
        MemorySegment.copy(t.segment(), 0, MemorySegment.ofArray(b), 0, b.length);
        return b;
    }

    @Test
    void theFileIsLaidOutAsTheFormatSpecifiesByteForByte() throws IOException {
        // Header, one UINT32 key, one 2x3 F32 tensor: every field at the place and width GGUF v3 gives it, the
        // dimensions innermost first, zero padding to 32 bytes before the data and after it.
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        var metadata = GgufMetadata.builder().put("a.b", GgufValue.uint32(7)).build();
        Path file = dir.resolve("tiny.gguf");
        GgufWriter.write(file, metadata, List.of(GgufTensor.of("w", GgmlType.F32, t)));

        ByteBuffer expected = ByteBuffer.allocate(128).order(ByteOrder.LITTLE_ENDIAN);
        expected.put("GGUF".getBytes(StandardCharsets.US_ASCII)).putInt(3).putLong(1).putLong(1);
        expected.putLong(3).put("a.b".getBytes(StandardCharsets.US_ASCII)).putInt(4).putInt(7);
        expected.putLong(1).put((byte) 'w').putInt(2).putLong(3).putLong(2).putInt(0).putLong(0);
        while (expected.position() % 32 != 0) {
            expected.put((byte) 0);
        }
        for (int i = 1; i <= 6; i++) {
            expected.putFloat(i);
        }
        while (expected.position() % 32 != 0) {
            expected.put((byte) 0);
        }
        byte[] want = new byte[expected.position()];
        expected.flip().get(want);
        assertArrayEquals(want, Files.readAllBytes(file));
    }

    @Test
    void metadataOfEveryTypeAndTensorsReadBackUnchanged() {
        var metadata = GgufMetadata.builder()
                .put("general.architecture", GgufValue.string("llama"))
                .put("t.u8", new GgufValue(GgufValueType.UINT8, null, 255L))
                .put("t.i8", new GgufValue(GgufValueType.INT8, null, -128L))
                .put("t.u16", new GgufValue(GgufValueType.UINT16, null, 65535L))
                .put("t.i16", new GgufValue(GgufValueType.INT16, null, -32768L))
                .put("t.u32", GgufValue.uint32(0xFFFF_FFFFL))
                .put("t.i32", GgufValue.int32(-5))
                .put("t.u64", GgufValue.uint64(-1L))
                .put("t.i64", new GgufValue(GgufValueType.INT64, null, Long.MIN_VALUE))
                .put("t.f32", GgufValue.float32(1e-6f))
                .put("t.f64", new GgufValue(GgufValueType.FLOAT64, null, Math.PI))
                .put("t.bool", GgufValue.bool(true))
                .put("t.string", GgufValue.string("ü \"quoted\" ▁x"))
                .put("t.strings", GgufValue.strings(List.of("a", "", "Ġb c")))
                .put("t.ints", GgufValue.int32s(1, -2, 3))
                .put("t.floats", GgufValue.float32s(0.5f, -0.0f, Float.NaN))
                .put("t.empty", GgufValue.strings(List.of()))
                .build();
        Tensor f32 = random(DType.F32, 1, 3, 5);
        Tensor bf16 = random(DType.BF16, 2, 7);
        Tensor f16a = random(DType.F16, 3, 2, 2, 3);
        Tensor f16b = random(DType.F16, 4, 2, 2, 3);
        var tensors = List.of(
                GgufTensor.of("blk.0.attn_q.weight", GgmlType.F32, f32),
                GgufTensor.of("norm", GgmlType.BF16, bf16),
                GgufTensor.of("stacked", GgmlType.F16, new int[] {2, 2, 2, 3}, List.of(f16a, f16b)));
        Path file = dir.resolve("all.gguf");
        GgufWriter.write(file, metadata, tensors);

        try (var reader = GgufReader.open(file)) {
            assertEquals(3, reader.version());
            assertEquals(metadata.entries(), reader.metadata().entries());
            assertEquals(List.of("blk.0.attn_q.weight", "norm", "stacked"),
                    reader.tensors().stream().map(GgufTensorInfo::name).toList());
            assertArrayEquals(new int[] {3, 5}, reader.tensor("blk.0.attn_q.weight").shape());
            assertArrayEquals(bytes(f32), bytes(reader.tensor("blk.0.attn_q.weight")));
            assertEquals(DType.BF16, reader.tensor("norm").dtype());
            assertArrayEquals(bytes(bf16), bytes(reader.tensor("norm")));
            Tensor stacked = reader.tensor("stacked");
            assertArrayEquals(new int[] {2, 2, 2, 3}, stacked.shape());
            assertArrayEquals(bytes(f16a), bytes(stacked.select(0)));
            assertArrayEquals(bytes(f16b), bytes(stacked.select(1)));
            // Offsets are the sums of the sizes before them, each padded to 32 bytes (ggml requires exactly that).
            var infos = reader.tensors();
            assertEquals(0, infos.get(0).offset());
            assertEquals(64, infos.get(1).offset());
            assertEquals(96, infos.get(2).offset());
        }
    }

    @Test
    void partsAreConvertedToTheFileTypeAsTheyAreWritten() {
        Tensor source = Tensor.of(new float[] {1.00390625f, -3.1415927f, 65504f, 1e-8f, 70000f}, 5);
        Tensor halves = Tensor.zeros(DType.BF16, 5);
        halves.copyFrom(source);
        Path file = dir.resolve("converted.gguf");
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(
                GgufTensor.of("bf16", GgmlType.BF16, source),
                GgufTensor.of("f16", GgmlType.F16, source),
                GgufTensor.of("widened", GgmlType.F32, halves)));
        try (var reader = GgufReader.open(file)) {
            Tensor bf16 = reader.tensor("bf16");
            Tensor f16 = reader.tensor("f16");
            Tensor widened = reader.tensor("widened");
            for (int i = 0; i < 5; i++) {
                float v = source.getFloat(i);
                assertEquals(FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(v)), bf16.getFloat(i), "bf16 " + v);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(v)), f16.getFloat(i), "f16 " + v);
                assertEquals(halves.getFloat(i), widened.getFloat(i), "widened " + v);
            }
            assertEquals(Float.POSITIVE_INFINITY, f16.getFloat(4), "70000 is past F16's range");
        }
    }

    /** {@code floats} quantised by core's codec, as the writer should store them. */
    private static byte[] quantised(DType type, float[] floats) {
        return bytes(Tensor.of(floats, floats.length).to(type));
    }

    @Test
    void floatPartsAreQuantisedIntoBlockTypesAsTheCodecsEncodeThem() {
        // 300 rows of 512: more than one conversion chunk, so the chunks must join where the blocks do
        Tensor big = random(DType.F32, 7, 300, 512);
        Tensor bf16 = random(DType.BF16, 8, 2, 64);
        Tensor expertA = random(DType.F32, 9, 2, 64);
        Tensor expertB = random(DType.F16, 10, 2, 64);
        Path file = dir.resolve("quantised.gguf");
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(
                GgufTensor.of("q4_k", GgmlType.Q4_K, big),
                GgufTensor.of("q8_0", GgmlType.Q8_0, bf16),
                GgufTensor.of("q4_0", GgmlType.Q4_0, new int[] {2, 2, 64}, List.of(expertA, expertB)),
                GgufTensor.of("mxfp4", GgmlType.MXFP4, bf16),
                GgufTensor.of("q5_k", GgmlType.Q5_K, big.slice(0, 4)),
                GgufTensor.of("q6_k", GgmlType.Q6_K, big.slice(0, 4))));
        try (var reader = GgufReader.open(file)) {
            Tensor q4k = reader.tensor("q4_k");
            assertEquals(DType.Q4_K, q4k.dtype());
            assertArrayEquals(new int[] {300, 512}, q4k.shape());
            assertArrayEquals(quantised(DType.Q4_K, big.toFloatArray()), bytes(q4k));
            assertArrayEquals(quantised(DType.Q8_0, bf16.toFloatArray()), bytes(reader.tensor("q8_0")));
            assertArrayEquals(quantised(DType.MXFP4, bf16.toFloatArray()), bytes(reader.tensor("mxfp4")));
            float[] experts = new float[256];
            System.arraycopy(expertA.toFloatArray(), 0, experts, 0, 128);
            System.arraycopy(expertB.toFloatArray(), 0, experts, 128, 128);
            assertArrayEquals(quantised(DType.Q4_0, experts), bytes(reader.tensor("q4_0")));
            float[] firstRows = big.slice(0, 4).toFloatArray();
            assertArrayEquals(quantised(DType.Q5_K, firstRows), bytes(reader.tensor("q5_k")));
            assertArrayEquals(quantised(DType.Q6_K, firstRows), bytes(reader.tensor("q6_k")));
        }
    }

    @Test
    void blockPartsOfTheFilesTypeAreCopiedAndOthersAreDecodedFirst() {
        Tensor floats = random(DType.F32, 11, 2, 256);
        Tensor q6 = floats.to(DType.Q6_K);
        Tensor q8 = floats.to(DType.Q8_0);
        Path file = dir.resolve("blocks.gguf");
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(
                GgufTensor.of("same", GgmlType.Q6_K, q6),
                GgufTensor.of("requantised", GgmlType.Q4_K, q8),
                GgufTensor.of("decoded", GgmlType.F32, q8)));
        try (var reader = GgufReader.open(file)) {
            assertArrayEquals(bytes(q6), bytes(reader.tensor("same")));
            assertArrayEquals(quantised(DType.Q4_K, q8.toFloatArray()), bytes(reader.tensor("requantised")));
            assertArrayEquals(q8.toFloatArray(), reader.tensor("decoded").toFloatArray());
        }
    }

    /** Values that depend on their index alone, as computed parts must. */
    private static final GgufPart.Values WAVE = (index, dst, n) -> {
        for (int i = 0; i < n; i++) {
            dst[i] = (float) Math.sin(0.37 * (index + i));
        }
    };

    private static float[] values(GgufPart.Values values, long index, int n) {
        float[] out = new float[n];
        values.fill(index, out, n);
        return out;
    }

    @Test
    void computedPartsAreWrittenAsTheSameValuesStoredWouldBe() throws IOException {
        // 1089 rows of 1024 F32 values: more chunks than one staging buffer's worth, converted in parallel batches
        int[] shape = {1089, 1024};
        Path file = dir.resolve("computed.gguf");
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(
                GgufTensor.computed("f32", GgmlType.F32, shape, WAVE),
                new GgufTensor("q8_0", GgmlType.Q8_0, new int[] {2, 64}, List.of(
                        new GgufPart.Computed(WAVE, 64, 64), new GgufPart.Computed(WAVE, 1024, 64)))));
        try (var reader = GgufReader.open(file)) {
            assertArrayEquals(values(WAVE, 0, 1089 * 1024), reader.tensor("f32").toFloatArray());
            float[] rows = new float[128];
            System.arraycopy(values(WAVE, 64, 64), 0, rows, 0, 64);
            System.arraycopy(values(WAVE, 1024, 64), 0, rows, 64, 64);
            assertArrayEquals(quantised(DType.Q8_0, rows), bytes(reader.tensor("q8_0")));
        }
    }

    /** Three tiles recurring in a fixed pattern; counts how often a tile is computed whole. */
    private static final class ThreeTiles implements GgufPart.Tiled {
        final AtomicInteger tilesComputed = new AtomicInteger();

        @Override
        public int tiles() {
            return 3;
        }

        @Override
        public int tileAt(long index) {
            return (int) (index / TILE * 7 % 3);
        }

        private static float value(int tile, int j) {
            return (tile + 1) * (float) Math.cos(0.1 * j);
        }

        @Override
        public void fillTile(int tile, float[] dst) {
            tilesComputed.incrementAndGet();
            for (int j = 0; j < TILE; j++) {
                dst[j] = value(tile, j);
            }
        }

        @Override
        public void fill(long index, float[] dst, int n) {
            for (int i = 0; i < n; i++) {
                long at = index + i;
                dst[i] = value(tileAt(at - at % TILE), (int) (at % TILE));
            }
        }

        @Override
        public Object tileSet() {
            return "three";
        }
    }

    @Test
    void tiledValuesAreEncodedOncePerTileAndTypeAndGiveWhatEncodingEachValueGives() throws IOException {
        var tiles = new ThreeTiles();
        int[] shape = {6, 512};
        Path file = dir.resolve("tiled.gguf");
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(
                GgufTensor.computed("q4_k", GgmlType.Q4_K, shape, tiles),
                GgufTensor.computed("q6_k", GgmlType.Q6_K, shape, tiles),
                GgufTensor.computed("again", GgmlType.Q4_K, shape, tiles),
                // a part that does not start at a tile is computed value by value
                new GgufTensor("unaligned", GgmlType.Q8_0, new int[] {1, 256}, List.of(
                        new GgufPart.Computed(tiles, 32, 256))),
                GgufTensor.computed("f32", GgmlType.F32, shape, tiles)));
        try (var reader = GgufReader.open(file)) {
            float[] all = values(tiles, 0, 6 * 512);
            assertArrayEquals(quantised(DType.Q4_K, all), bytes(reader.tensor("q4_k")));
            assertArrayEquals(quantised(DType.Q6_K, all), bytes(reader.tensor("q6_k")));
            assertArrayEquals(quantised(DType.Q4_K, all), bytes(reader.tensor("again")));
            assertArrayEquals(quantised(DType.Q8_0, values(tiles, 32, 256)), bytes(reader.tensor("unaligned")));
            assertArrayEquals(all, reader.tensor("f32").toFloatArray());
        }
        assertEquals(3 * 2, tiles.tilesComputed.get(), "each tile once for Q4_K and once for Q6_K");
    }

    @Test
    void blockTypesNeedRowsAndPartsOfWholeBlocks() {
        var rows = assertThrows(IllegalArgumentException.class,
                () -> GgufTensor.of("w", GgmlType.Q4_K, random(DType.F32, 1, 2, 128)));
        assertTrue(rows.getMessage().contains("rows of 128 elements, not a multiple of its block size 256"),
                rows.getMessage());
        var parts = assertThrows(IllegalArgumentException.class, () -> GgufTensor.of("w", GgmlType.Q8_0,
                new int[] {1, 64}, List.of(random(DType.F32, 1, 16), random(DType.F32, 2, 48))));
        assertTrue(parts.getMessage().contains("a part of 16 elements is not whole blocks of 32"), parts.getMessage());
    }

    @Test
    void aLargerAlignmentPadsTheDataSectionAndEveryTensor() throws IOException {
        var metadata = GgufMetadata.builder().put(GgufMetadata.ALIGNMENT, GgufValue.uint32(256)).build();
        Tensor a = random(DType.F32, 5, 3);
        Tensor b = random(DType.F32, 6, 300);
        Path file = dir.resolve("aligned.gguf");
        GgufWriter.write(file, metadata, List.of(GgufTensor.of("a", GgmlType.F32, a), GgufTensor.of("b", GgmlType.F32, b)));
        try (var reader = GgufReader.open(file)) {
            assertEquals(256, reader.metadata().alignment());
            assertEquals(256, reader.info("b").orElseThrow().offset());
            assertArrayEquals(bytes(b), bytes(reader.tensor("b")));
        }
        long size = Files.size(file);
        assertEquals(0, size % 256, "the last tensor is padded too");
    }

    @Test
    void aWriteThatFailsLeavesNothingBehindAndKeepsTheOldFile() throws IOException {
        Path file = dir.resolve("model.gguf");
        Files.writeString(file, "the old file");
        Tensor gone;
        try (Arena arena = Arena.ofConfined()) {
            gone = Tensor.wrap(DType.F32, arena.allocate(16), 4);
        }
        Tensor live = random(DType.F32, 1, 4);
        var tensors = List.of(GgufTensor.of("ok", GgmlType.F32, live), GgufTensor.of("gone", GgmlType.BF16, gone));
        assertThrows(IllegalStateException.class, () -> GgufWriter.write(file, GgufMetadata.builder().build(), tensors));
        assertEquals("the old file", Files.readString(file));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "no temporary file is left");
        }
    }

    @Test
    void aTargetThatCannotBeWrittenIsOneLineNamingIt() throws IOException {
        Path blocker = dir.resolve("not-a-folder");
        Files.writeString(blocker, "x");
        Path target = blocker.resolve("model.gguf");
        var e = assertThrows(BadInputException.class, () -> GgufWriter.write(target, GgufMetadata.builder().build(),
                List.of()));
        assertTrue(e.getMessage().startsWith(target + ": cannot write"), e.getMessage());
    }

    @Test
    void whatTheFormatCannotHoldIsRefusedBeforeWriting() {
        Tensor t = Tensor.zeros(4);
        assertThrows(IllegalArgumentException.class, () -> GgufWriter.write(dir.resolve("dup.gguf"),
                GgufMetadata.builder().build(), List.of(GgufTensor.of("x", GgmlType.F32, t), GgufTensor.of("x", GgmlType.F32, t))));
        assertThrows(IllegalArgumentException.class, () -> GgufTensor.of("n".repeat(64), GgmlType.F32, t));
        assertThrows(IllegalArgumentException.class, () -> GgufTensor.of("", GgmlType.F32, t));
        assertThrows(IllegalArgumentException.class, () -> GgufTensor.of("x", GgmlType.F32, new int[] {5}, List.of(t)));
        assertThrows(IllegalArgumentException.class, () -> GgufTensor.of("x", GgmlType.F32, new int[] {1, 1, 1, 1, 4},
                List.of(t)));
        assertThrows(IllegalArgumentException.class, () -> GgufMetadata.builder().put("k", GgufValue.bool(true))
                .put("k", GgufValue.bool(false)));
        assertThrows(IllegalArgumentException.class, () -> GgufMetadata.builder().put("ké", GgufValue.bool(true)));
        assertThrows(IllegalArgumentException.class, () -> GgufMetadata.builder().put(GgufMetadata.ALIGNMENT,
                GgufValue.uint32(48)));
        assertThrows(IllegalArgumentException.class, () -> GgufMetadata.builder().put(GgufMetadata.ALIGNMENT,
                GgufValue.int32(64)));
        assertThrows(IllegalArgumentException.class, () -> GgufValue.uint32(-1));
        assertThrows(IllegalArgumentException.class, () -> new GgufValue(GgufValueType.UINT8, null, 256L));
        assertTrue(dir.toFile().list().length == 0, "nothing was written");
    }
}
