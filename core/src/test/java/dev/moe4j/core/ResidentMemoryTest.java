package dev.moe4j.core;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ResidentMemoryTest {
    @Test
    void copiesKeepShapeTypeAndEveryBitAcrossChunks() {
        var random = new SplittableRandom(7);
        List<Tensor> originals = new ArrayList<>();
        List<Tensor> copies = new ArrayList<>();
        try (var memory = new ResidentMemory()) {
            // 2 or 4 MiB and a little each: the 64 MiB chunks fill up and new ones start, at unaligned sizes.
            for (int i = 0; i < 40; i++) {
                int rows = 1024 + i, cols = 1024 + (i % 3);
                float[] values = new float[rows * cols];
                for (int j = 0; j < values.length; j++) {
                    values[j] = (float) random.nextGaussian();
                }
                Tensor t = Tensor.of(values, rows, cols);
                Tensor original = i % 2 == 0 ? t : t.to(DType.BF16);
                originals.add(original);
                copies.add(memory.copyOf(original));
            }
            long bytes = 0;
            for (int i = 0; i < originals.size(); i++) {
                Tensor a = originals.get(i), b = copies.get(i);
                assertEquals(a.dtype(), b.dtype());
                assertArrayEquals(a.shape(), b.shape());
                assertEquals(0, b.segment().address() % 64, "copies start on a cache line");
                assertEquals(-1, a.segment().mismatch(b.segment()), "copy " + i + " differs from its original");
                bytes += a.byteSize();
            }
            assertEquals(bytes, memory.bytes());
            assertTrue(bytes > ResidentMemory.CHUNK, "the test spans more than one chunk");
        }
    }

    @Test
    void copiesCannotBeReadOnceTheMemoryIsClosed() {
        var memory = new ResidentMemory();
        Tensor copy = memory.copyOf(Tensor.vector(1f, 2f, 3f));
        assertEquals(2f, copy.getFloat(1));
        memory.close();
        assertThrows(IllegalStateException.class, () -> copy.getFloat(1));
    }
}
