package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Broken GGUF files: each is one BadInputException naming the file and what is wrong, never another failure. */
class CorruptGgufTest {
    @TempDir
    Path dir;

    /** A valid file with a string key, an array key and two tensors, as bytes to break. */
    private byte[] valid() throws IOException {
        var metadata = GgufMetadata.builder()
                .put("general.name", GgufValue.string("tiny"))
                .put("tokenizer.ggml.tokens", GgufValue.strings(List.of("a", "b")))
                .put("flag", GgufValue.bool(true))
                .build();
        Path file = dir.resolve("valid.gguf");
        GgufWriter.write(file, metadata, List.of(
                GgufTensor.of("first", GgmlType.F32, GgufWriterTest.random(DType.F32, 1, 2, 4)),
                GgufTensor.of("other", GgmlType.BF16, GgufWriterTest.random(DType.BF16, 2, 4))));
        return Files.readAllBytes(file);
    }

    private String error(byte[] content) throws IOException {
        Path file = dir.resolve("broken.gguf");
        Files.write(file, content);
        var e = assertThrows(BadInputException.class, () -> {
            try (var reader = GgufReader.open(file)) {
                fail("opened: " + reader.tensors());
            }
        });
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    /** Where {@code field} (a tensor name's bytes) ends in the file. */
    private static int after(byte[] content, String field) {
        byte[] needle = field.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i + needle.length <= content.length; i++) {
            if (Arrays.equals(content, i, i + needle.length, needle, 0, needle.length)) {
                return i + needle.length;
            }
        }
        throw new AssertionError(field + " not found");
    }

    private static void putInt(byte[] content, int at, int value) {
        ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putInt(at, value);
    }

    private static void putLong(byte[] content, int at, long value) {
        ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(at, value);
    }

    @Test
    void everyTruncationOfTheHeaderIsRefused() throws IOException {
        byte[] content = valid();
        int dataStart = after(content, "other") + 4 + 8 + 4 + 8;
        for (int length = 0; length < dataStart; length++) {
            String message = error(Arrays.copyOf(content, length));
            assertTrue(message.contains("truncated") || message.contains("cannot fit") || message.contains("ends past"),
                    length + ": " + message);
        }
        assertTrue(error(Arrays.copyOf(content, content.length - 30)).contains("tensor 'other'"));
    }

    @Test
    void aWrongMagicOrVersionIsNamed() throws IOException {
        byte[] content = valid();
        content[0] = 'X';
        assertTrue(error(content).contains("not a GGUF file"));
        content = valid();
        putInt(content, 4, 1);
        assertTrue(error(content).contains("version 1 is not supported"));
        ByteBuffer.wrap(content).order(ByteOrder.BIG_ENDIAN).putInt(4, 3);
        assertTrue(error(content).contains("big-endian"));
    }

    @Test
    void countsTheFileCannotHoldAreRefusedBeforeAllocating() throws IOException {
        byte[] content = valid();
        putLong(content, 8, Long.MAX_VALUE);
        assertTrue(error(content).contains("tensor count"));
        content = valid();
        putLong(content, 16, 1L << 40);
        assertTrue(error(content).contains("metadata count"));
        content = valid();
        int arrayLength = after(content, "tokenizer.ggml.tokens") + 4 + 4;
        putLong(content, arrayLength, 1L << 50);
        assertTrue(error(content).contains("array length"));
    }

    @Test
    void badValuesAndTensorInfosAreNamed() throws IOException {
        byte[] content = valid();
        content[after(content, "flag") + 4] = 2;
        assertTrue(error(content).contains("a bool must be 0 or 1"));

        content = valid();
        content[after(content, "tiny") - 1] = (byte) 0xFF;
        assertTrue(error(content).contains("not valid UTF-8"));

        content = valid();
        putInt(content, after(content, "flag"), 99);
        assertTrue(error(content).contains("unknown value type 99"));

        content = valid();
        int type = after(content, "other") + 4 + 8;
        putInt(content, type, 10);
        String unknown = error(content);
        assertTrue(unknown.contains("ggml type 10 (Q2_K); moe4j reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K,"
                + " MXFP4"), "types moe4j does not read are named, and those it reads listed: " + unknown);

        content = valid();
        putInt(content, type, 8);
        assertTrue(error(content).contains("tensor 'other' of type Q8_0 has rows of 4 elements; expected a multiple"
                + " of its block size 32"), "a block type's rows are whole blocks");

        content = valid();
        putLong(content, type + 4, 33);
        assertTrue(error(content).contains("not a multiple of the alignment 32"));

        content = valid();
        putLong(content, type + 4, 0);
        assertTrue(error(content).contains("overlaps tensor 'first'"));

        content = valid();
        putInt(content, after(content, "first"), 5);
        assertTrue(error(content).contains("5 dimensions"));

        content = valid();
        System.arraycopy("first".getBytes(StandardCharsets.UTF_8), 0, content, after(content, "other") - 5, 5);
        assertTrue(error(content).contains("tensor name 'first' appears twice"));
    }

    @Test
    void blockTensorsAreReadAsTheirBlocks() throws IOException {
        Path file = dir.resolve("blocks.gguf");
        var q4k = GgufWriterTest.random(DType.F32, 3, 2, 256).to(DType.Q4_K);
        GgufWriter.write(file, GgufMetadata.builder().build(), List.of(GgufTensor.of("w", GgmlType.Q4_K, q4k)));
        byte[] content = Files.readAllBytes(file);
        try (var reader = GgufReader.open(file)) {
            assertEquals(DType.Q4_K, reader.tensor("w").dtype());
            assertArrayEquals(q4k.toFloatArray(), reader.tensor("w").toFloatArray());
        }
        putInt(content, after(content, "w") + 4 + 8 + 8, 14);
        assertTrue(error(content).contains("tensor 'w' (420 bytes at offset 0) ends past the end of the file"),
                "Q6_K's blocks are larger than Q4_K's: the data no longer fits");
    }

    @Test
    void randomlyDamagedHeadersGiveOnlyCleanErrors() throws IOException {
        byte[] original = valid();
        int headerEnd = after(original, "other") + 4 + 8 + 4 + 8;
        var random = new Random(11);
        Path file = dir.resolve("fuzzed.gguf");
        for (int trial = 0; trial < 500; trial++) {
            byte[] content = original.clone();
            for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                content[random.nextInt(headerEnd)] = (byte) random.nextInt(256);
            }
            Files.write(file, content);
            try (var reader = GgufReader.open(file)) {
                reader.tensors().forEach(t -> {
                    var tensor = reader.tensor(t.name());
                    if (tensor.size() > 0) {
                        tensor.getFloat(tensor.size() - 1);
                    }
                });
            } catch (BadInputException expected) {
                assertTrue(expected.getMessage().startsWith(file + ": "), expected.getMessage());
            }
        }
    }
}
