package dev.moe4j.core;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.*;

class TensorTest {
    @Test
    void viewsShareMemoryWithTheirSource() {
        Tensor t = Tensor.zeros(3, 4);
        t.slice(1, 3).reshape(-1).setFloat(5, 7f);
        assertEquals(7f, t.get(2, 1));
        assertEquals(7f, t.select(2).get(1));
        assertArrayEquals(new int[] {2, 6}, t.reshape(2, -1).shape());
    }

    @Test
    void bf16AndF16RoundTripThroughFloat() {
        Tensor t = Tensor.zeros(DType.BF16, 4);
        t.setFloat(0, 1.0f);
        t.setFloat(1, -3.140625f);
        t.setFloat(2, 1.00390625f); // halfway between two bf16 values: rounds to even (1.0)
        assertEquals(1.0f, t.getFloat(0));
        assertEquals(-3.140625f, t.getFloat(1));
        assertEquals(1.0f, t.getFloat(2));
        Tensor h = Tensor.of(new float[] {0.5f, 65504f}, 2).to(DType.F16);
        assertArrayEquals(new float[] {0.5f, 65504f}, h.toFloatArray());
    }

    @Test
    void nativeSegmentsAndHeapArraysReadAlike() {
        Tensor heap = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        try (Arena arena = Arena.ofConfined()) {
            var segment = arena.allocate(heap.byteSize());
            Tensor offHeap = Tensor.wrap(DType.F32, segment, 2, 3);
            offHeap.copyFrom(heap);
            assertArrayEquals(heap.toFloatArray(), offHeap.toFloatArray());
        }
    }

    @Test
    void wrapRejectsASegmentOfTheWrongSize() {
        var segment = java.lang.foreign.MemorySegment.ofArray(new float[5]);
        assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(DType.F32, segment, 2, 3));
    }

    @Test
    void unknownDtypeNamesTheExpectedSet() {
        var e = assertThrows(BadInputException.class, () -> DType.parse("F128"));
        assertTrue(e.getMessage().contains("F128") && e.getMessage().contains("BF16"), e.getMessage());
    }

    @Test
    void parallelForRangeVisitsEveryIndexOnce() {
        for (int n : new int[] {0, 1, 7, 1000}) {
            var visits = new AtomicIntegerArray(n);
            Parallel.forRange(n, 1, (from, to) -> {
                for (int i = from; i < to; i++) {
                    visits.incrementAndGet(i);
                }
            });
            for (int i = 0; i < n; i++) {
                assertEquals(1, visits.get(i));
            }
        }
    }
}
