package dev.moe4j.core;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

class DTypeTest {
    @Test
    void packedTypesCountBytesByBits() {
        assertEquals(2, DType.F4.byteCount(4));
        assertEquals(3, DType.F6_E2M3.byteCount(4));
        assertEquals(8, DType.C64.byteCount(1));
        assertThrows(IllegalArgumentException.class, () -> DType.F4.byteCount(3));
        assertThrows(UnsupportedOperationException.class, DType.F4::byteSize);
    }

    @Test
    void declarationOrderIsTheReferenceAlignmentOrder() {
        // The safetensors writer sorts by descending position in this order, so it must match the reference.
        assertTrue(DType.U64.ordinal() > DType.I64.ordinal() && DType.I64.ordinal() > DType.F64.ordinal());
        assertTrue(DType.F32.ordinal() > DType.BF16.ordinal() && DType.BF16.ordinal() > DType.F16.ordinal());
        assertTrue(DType.U8.ordinal() > DType.F6_E3M2.ordinal() && DType.F4.ordinal() > DType.BOOL.ordinal());
    }

    @Test
    void packedTensorsWrapWholeBytes() {
        Tensor t = Tensor.wrap(DType.F4, MemorySegment.ofArray(new byte[6]), 3, 4);
        assertEquals(12, t.size());
        assertEquals(2, t.slice(1, 2).byteSize());
        assertEquals(8, Tensor.zeros(DType.C64, 1).byteSize());
    }
}
