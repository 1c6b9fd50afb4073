package dev.moe4j.cuda;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CapturedWork;
import dev.moe4j.core.backend.MemoryScope;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * A device's recorded work (a CUDA graph from stream capture) replays what it recorded on the inputs' values of the
 * replay, into memory that keeps its address; a step that touches host memory is not recorded, and nothing of it runs.
 */
class CapturedWorkTest {
    @Test
    void replayReadsTheInputsOfItsTimeIntoTheSameMemory() {
        CudaDevice d = Gpu.device(Precision.F32);
        var b = d.backend();
        Tensor input = d.upload(Tensor.of(new float[] {1, 2, 3}, 3));
        Tensor[] out = new Tensor[1];
        try (CapturedWork work = d.capture(() -> {
            Tensor doubled = b.empty(DType.F32, 3);
            b.add(doubled, input, input);
            Tensor result = b.empty(DType.F32, 3);
            b.mul(result, doubled, input);
            out[0] = result;
        })) {
            assertNotNull(work, "an elementwise step is recorded");
            work.replay();
            assertArrayEquals(new float[] {2, 8, 18}, out[0].toHost().toFloatArray());
            b.copy(input, Tensor.of(new float[] {-1, 0.5f, 4}, 3));
            work.replay();
            assertArrayEquals(new float[] {2, 0.5f, 32}, out[0].toHost().toFloatArray());
        } finally {
            d.free(input);
        }
    }

    @Test
    void aStepThatTouchesHostMemoryIsNotRecordedAndNothingOfItRuns() {
        CudaDevice d = Gpu.device(Precision.F32);
        var b = d.backend();
        Tensor x = d.upload(Tensor.of(new float[] {1, 2}, 2));
        try {
            assertNull(d.capture(() -> {
                b.scale(x, 10f);
                b.toHost(x);
            }));
            assertNull(d.capture(() -> b.copy(x, Tensor.of(new float[] {7, 7}, 2))));
            // the stream runs work again, and the scale recorded before the refusal never ran
            try (var scope = MemoryScope.open()) {
                b.scale(x, 3f);
                assertArrayEquals(new float[] {3, 6}, x.toHost().toFloatArray());
            }
        } finally {
            d.free(x);
        }
    }
}
