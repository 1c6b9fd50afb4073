package dev.moe4j.io.idx;

import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IdxFileTest {
    @TempDir
    Path dir;

    /** An IDX header of unsigned bytes with these dimensions, then {@code values}. */
    static byte[] idx(int[] dims, byte[] values) {
        var b = ByteBuffer.allocate(4 + 4 * dims.length + values.length);
        b.put((byte) 0).put((byte) 0).put((byte) 0x08).put((byte) dims.length);
        for (int d : dims) {
            b.putInt(d);
        }
        return b.put(values).array();
    }

    static byte[] gzip(byte[] bytes) throws IOException {
        var out = new ByteArrayOutputStream();
        try (var g = new GZIPOutputStream(out)) {
            g.write(bytes);
        }
        return out.toByteArray();
    }

    private Path write(String name, byte[] bytes) throws IOException {
        return Files.write(dir.resolve(name), bytes);
    }

    private String refusal(byte[] bytes) throws IOException {
        Path file = write("bad.idx", bytes);
        String message = assertThrows(BadInputException.class, () -> IdxFile.read(file)).getMessage();
        assertTrue(message.startsWith(file.toString() + ": "), message);
        assertFalse(message.contains("\n"), message);
        return message;
    }

    @Test
    void readsImagesPlainAndGzippedAlike() throws IOException {
        byte[] values = {0, 1, 2, (byte) 255, 4, 5, 6, 7};
        byte[] file = idx(new int[] {2, 2, 2}, values);
        for (Path p : new Path[] {write("a", file), write("a.gz", gzip(file))}) {
            IdxFile f = IdxFile.read(p);
            assertArrayEquals(new int[] {2, 2, 2}, f.dims());
            assertEquals(2, f.count());
            assertEquals(4, f.entrySize());
            assertEquals(255, f.unsigned(3));
            assertArrayEquals(values, f.values());
        }
    }

    @Test
    void theCommittedFashionMnistSubsetReads() {
        Path subset = Path.of("../data/fashion-mnist-subset");
        IdxFile images = IdxFile.read(subset.resolve("train-images-idx3-ubyte.gz"));
        IdxFile labels = IdxFile.read(subset.resolve("train-labels-idx1-ubyte.gz"));
        assertArrayEquals(new int[] {320, 28, 28}, images.dims());
        assertArrayEquals(new int[] {320}, labels.dims());
    }

    @Test
    void aBadMagicTypeOrDimensionCountIsRefusedNamingTheField() throws IOException {
        assertTrue(refusal(new byte[] {1, 0, 8, 1, 0, 0, 0, 1, 5}).contains("magic"));
        assertTrue(refusal(new byte[] {0, 0, 0x0D, 1, 0, 0, 0, 1, 5}).contains("type: expected 0x08"));
        assertTrue(refusal(new byte[] {0, 0, 8, 0}).contains("dimensions: expected 1 to 4, got 0"));
        assertTrue(refusal(new byte[] {0, 0, 8, 9}).contains("dimensions: expected 1 to 4, got 9"));
        assertTrue(refusal(new byte[] {0, 0}).contains("too short"));
    }

    @Test
    void aZeroNegativeOrHugeDimensionIsRefusedBeforeAnyAllocation() throws IOException {
        assertTrue(refusal(idx(new int[] {3, 0}, new byte[0])).contains("dimension 1: expected a positive size, got 0"));
        assertTrue(refusal(idx(new int[] {-1}, new byte[0])).contains("dimension 0: expected a positive size, got 4294967295"));
        assertTrue(refusal(idx(new int[] {65536, 65536, 28}, new byte[0])).contains("more than"));
    }

    @Test
    void dataShorterOrLongerThanTheHeaderDeclaresIsRefused() throws IOException {
        assertTrue(refusal(idx(new int[] {2, 3}, new byte[5])).contains("ends before"));
        assertTrue(refusal(idx(new int[] {2, 3}, new byte[7])).contains("data: longer than the 6 values"));
        assertTrue(refusal(gzip(idx(new int[] {4}, new byte[3]))).contains("ends before"));
    }

    @Test
    void aBrokenGzipStreamIsRefusedInOneLine() throws IOException {
        byte[] g = gzip(idx(new int[] {64}, new byte[64]));
        g[12] ^= 0x55;
        refusal(g);
    }
}
