package dev.moe4j.io.safetensors;

import dev.moe4j.core.DType;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class SafetensorsWriterTest {
    @TempDir
    Path dir;

    @Test
    void rewritingFilesOfThePythonLibraryReproducesThemByteForByte() throws IOException {
        // The fixtures were written by the Python safetensors library (transformers' save_pretrained); writing
        // the same tensors and metadata must give the same bytes: same order, same JSON, same padding.
        try (Stream<Path> files = Files.list(Fixtures.sharded())) {
            for (Path original : files.filter(p -> p.toString().endsWith(".safetensors")).sorted().toList()) {
                Path copy = dir.resolve(original.getFileName());
                try (var reader = SafetensorsReader.open(original)) {
                    var tensors = new LinkedHashMap<String, Tensor>();
                    reader.names().forEach(n -> tensors.put(n, reader.tensor(n)));
                    SafetensorsWriter.write(copy, tensors, reader.metadata());
                }
                assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(copy), original.toString());
            }
        }
    }

    @Test
    void blockQuantizedTensorsAreRefused() {
        var tensors = Map.of("w", Tensor.zeros(DType.Q8_0, 1, 32));
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(dir.resolve("q.safetensors"), tensors, Map.of()));
        org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("Q8_0"), e.getMessage());
    }

    @Test
    void everyDtypeRoundTripsThroughAFile() {
        var random = new Random(7);
        var tensors = new LinkedHashMap<String, Tensor>();
        for (DType dtype : DType.values()) {
            if (dtype.isBlockQuantized()) {
                continue; // GGUF's types, which safetensors has no name for
            }
            Tensor t = Tensor.zeros(dtype, 2, 4); // 8 elements fill whole bytes for the packed 4- and 6-bit types
            byte[] bytes = new byte[(int) t.byteSize()];
            random.nextBytes(bytes);
            MemorySegment.copy(MemorySegment.ofArray(bytes), 0, t.segment(), 0, bytes.length);
            tensors.put("t." + dtype.name().toLowerCase(), t);
        }
        tensors.put("scalar", Tensor.of(new float[] {3.5f}));
        tensors.put("empty", Tensor.zeros(DType.BF16, 0, 3));
        Path file = dir.resolve("all.safetensors");
        SafetensorsWriter.write(file, tensors, Map.of("format", "pt", "note", "ü \"quoted\""));

        try (var reader = SafetensorsReader.open(file)) {
            assertEquals(Map.of("format", "pt", "note", "ü \"quoted\""), reader.metadata());
            assertEquals(tensors.keySet(), new java.util.HashSet<>(reader.names()));
            for (var e : tensors.entrySet()) {
                Tensor back = reader.tensor(e.getKey());
                assertEquals(e.getValue().dtype(), back.dtype(), e.getKey());
                assertArrayEquals(e.getValue().shape(), back.shape(), e.getKey());
                assertArrayEquals(bytes(e.getValue()), bytes(back), e.getKey());
            }
            assertEquals(3.5f, reader.tensor("scalar").getFloat(0));
        }
    }

    @Test
    void layoutPutsWiderDtypesFirstThenNamesInOrder() {
        var tensors = new LinkedHashMap<String, Tensor>();
        tensors.put("b", Tensor.zeros(DType.F32, 1));
        tensors.put("a", Tensor.zeros(DType.BF16, 1));
        tensors.put("c", Tensor.zeros(DType.I64, 1));
        tensors.put("a2", Tensor.zeros(DType.F32, 1));
        tensors.put("z", Tensor.zeros(DType.U8, 1));
        var order = SafetensorsWriter.layoutOrder(tensors).stream().map(Map.Entry::getKey).toList();
        assertEquals(List.of("c", "a2", "b", "a", "z"), order);
    }

    @Test
    void headerIsCompactJsonPaddedWithSpacesToEightBytes() {
        byte[] file = SafetensorsWriter.header(
                SafetensorsWriter.layoutOrder(Map.of("w", Tensor.zeros(DType.F32, 2, 2))), Map.of());
        long length = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, length % 8);
        assertEquals(file.length - 8, length);
        String json = new String(file, 8, (int) length, StandardCharsets.UTF_8);
        assertEquals("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", json.stripTrailing());
        assertTrue(json.endsWith(" ") && json.stripTrailing().length() + 7 >= json.length());
    }

    @Test
    void aFailedWriteLeavesNoFileBehind() throws IOException {
        Path file = dir.resolve("model.safetensors");
        Tensor dead;
        try (Arena arena = Arena.ofConfined()) {
            dead = Tensor.wrap(DType.F32, arena.allocate(64), 4, 4);
        }
        var tensors = new LinkedHashMap<String, Tensor>();
        tensors.put("alive", Tensor.zeros(4));
        tensors.put("dead", dead); // its memory is gone: copying it fails half way through the data
        assertThrows(IllegalStateException.class, () -> SafetensorsWriter.write(file, tensors));
        assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, Map.of("__metadata__", Tensor.zeros(1))));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(), left.toList(), "neither the target nor a temporary file remains");
        }
    }

    @Test
    void anExistingFileIsReplacedWhole() throws IOException {
        Path file = dir.resolve("x.safetensors");
        SafetensorsWriter.write(file, Map.of("a", Tensor.zeros(1000)));
        SafetensorsWriter.write(file, Map.of("b", Tensor.zeros(2)));
        try (var reader = SafetensorsReader.open(file)) {
            assertEquals(List.of("b"), List.copyOf(reader.names()));
        }
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(1, left.count());
        }
    }

    private static byte[] bytes(Tensor t) {
        byte[] out = new byte[(int) t.byteSize()];
        MemorySegment.copy(t.segment(), 0, MemorySegment.ofArray(out), 0, out.length);
        return out;
    }
}
