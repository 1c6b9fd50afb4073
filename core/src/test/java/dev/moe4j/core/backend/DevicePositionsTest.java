package dev.moe4j.core.backend;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.core.kernels.RopeFrequencies;
import dev.moe4j.core.kernels.RopeLayout;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.core.testing.RandomTensors;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The operations that take their ids or positions from a tensor (what a recorded decoding step reads on its device)
 * compute what their forms with host arrays compute: by default they read the tensor back and call those forms.
 */
class DevicePositionsTest {
    private final Backend b = CpuBackend.INSTANCE;
    private final Random random = new Random(5);

    private static Tensor ints(int... values) {
        Tensor t = Tensor.zeros(DType.I32, values.length);
        for (int i = 0; i < values.length; i++) {
            t.setLong(i, values[i]);
        }
        return t;
    }

    @Test
    void embeddingAndRopeReadTheirIdsAndPositionsFromATensor() {
        Tensor table = RandomTensors.normal(random, 11, 6);
        Tensor want = Tensor.zeros(DType.F32, 3, 6), got = Tensor.zeros(DType.F32, 3, 6);
        b.embedding(want, table, new int[] {4, 0, 10});
        b.embedding(got, table, ints(4, 0, 10));
        assertArrayEquals(want.toFloatArray(), got.toFloatArray());

        var rope = new RopeTable(RopeFrequencies.standard(10000, 4), 16);
        Tensor x = RandomTensors.normal(random, 3, 2 * 4);
        Tensor a = x.copy(), c = x.copy();
        b.rope(a, new int[] {7, 0, 15}, rope, RopeLayout.HALF, 4, 4);
        b.rope(c, ints(7, 0, 15), rope, RopeLayout.HALF, 4, 4);
        assertArrayEquals(a.toFloatArray(), c.toFloatArray());
    }

    @Test
    void aRowWrittenAtItsPositionIsAttendedAsTheCacheOfThatLength() {
        var spec = AttentionSpec.of(4, 2, 8);
        int capacity = 9, position = 5;
        Tensor keys = RandomTensors.normal(random, capacity, 16), values = RandomTensors.normal(random, capacity, 16);
        Tensor k = RandomTensors.normal(random, 1, 16), v = RandomTensors.normal(random, 1, 16);
        Tensor q = RandomTensors.normal(random, 1, 32);
        Tensor expectedKeys = keys.copy(), expectedValues = values.copy();
        expectedKeys.slice(position, position + 1).copyFrom(k);
        expectedValues.slice(position, position + 1).copyFrom(v);
        Tensor want = Tensor.zeros(DType.F32, 1, 32), got = Tensor.zeros(DType.F32, 1, 32);
        b.attentionWithCache(want, q, expectedKeys.slice(0, position + 1), expectedValues.slice(0, position + 1),
                position, spec, null);

        Tensor at = ints(position);
        b.writeRowsAt(keys, values, at, k, v);
        b.attentionAt(got, q, keys, values, at, spec, null);
        assertArrayEquals(expectedKeys.toFloatArray(), keys.toFloatArray());
        assertArrayEquals(expectedValues.toFloatArray(), values.toFloatArray());
        assertArrayEquals(want.toFloatArray(), got.toFloatArray());
    }
}
