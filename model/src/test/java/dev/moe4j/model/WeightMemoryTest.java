package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A CPU model computes the same numbers whether its weights are copied into memory or left mapped. */
class WeightMemoryTest {
    private static float[] logits(TransformerModel model, int[] prompt) {
        var state = model.newState(16);
        Tensor first = model.forward(state, prompt, false, null);
        Tensor next = model.forward(state, new int[] {3}, true, null);
        float[] both = new float[(int) (first.size() + next.size())];
        System.arraycopy(first.toFloatArray(), 0, both, 0, (int) first.size());
        System.arraycopy(next.toFloatArray(), 0, both, (int) first.size(), (int) next.size());
        return both;
    }

    @Test
    void copiedAndMappedWeightsGiveBitIdenticalLogits() {
        // BF16 weights in four shards: the copies keep the stored type, and every shard's tensors are found.
        Path folder = Resources.fixture("mixtral-bf16-sharded");
        int[] prompt = {1, 5, 9, 2, 7};
        try (var copied = ModelLoader.load(folder, CpuBackend.INSTANCE, WeightMemory.COPIED);
             var mapped = ModelLoader.load(folder, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            assertTrue(copied.weightsCopied());
            assertFalse(mapped.weightsCopied());
            assertArrayEquals(logits(mapped, prompt), logits(copied, prompt));
        }
    }

    @Test
    void aClosedModelWithCopiedWeightsRefusesToRunRatherThanReadFreedMemory() {
        var model = ModelLoader.load(Resources.fixture("mixtral"), CpuBackend.INSTANCE, WeightMemory.COPIED);
        var state = model.newState(8);
        model.close();
        assertThrows(IllegalStateException.class, () -> model.forward(state, new int[] {1, 2}, true, null));
    }

    @Test
    void autoCopiesWhatFitsAndMapsWhatDoesNot() {
        assertTrue(WeightMemory.AUTO.copies(1 << 20));
        assertFalse(WeightMemory.AUTO.copies(Long.MAX_VALUE / 2));
        assertTrue(WeightMemory.COPIED.copies(Long.MAX_VALUE / 2));
        assertFalse(WeightMemory.MAPPED.copies(1));
    }
}
