package dev.moe4j.io.safetensors;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafetensorsReaderTest {
    @Test
    void shardedCheckpointResolvesEveryIndexedTensorInItsShard() {
        var index = Json.read(Fixtures.sharded().resolve(Checkpoint.INDEX_FILE));
        try (var checkpoint = Checkpoint.open(Fixtures.sharded())) {
            assertEquals(4, checkpoint.files().size());
            assertEquals(index.get("weight_map").size(), checkpoint.names().size());
            long bytes = 0;
            long parameters = 0;
            for (String name : checkpoint.names()) {
                TensorEntry e = checkpoint.entry(name);
                assertEquals(DType.BF16, e.dtype(), name);
                assertEquals(index.get("weight_map").get(name).asText(),
                        checkpoint.fileOf(name).path().getFileName().toString());
                bytes += e.byteLength();
                parameters += e.elementCount();
            }
            // The index's totals were written by transformers; ours are summed from the shard headers.
            assertEquals(index.get("metadata").get("total_size").asLong(), bytes);
            assertEquals(index.get("metadata").get("total_parameters").asLong(), parameters);
            assertEquals(List.of(512, 64), checkpoint.entry("lm_head.weight").shape());
            assertEquals(List.of(8, 64), checkpoint.entry("model.layers.1.block_sparse_moe.gate.weight").shape());
            assertEquals(Map.of("format", "pt"), checkpoint.files().getFirst().metadata());
        }
    }

    @Test
    void bf16EmbeddingRowsEqualTheReferenceEmbeddingOutput() {
        // transformers' hidden_states.0 is the embedding of input_ids: bf16 weights widened to float32, exactly.
        try (var checkpoint = Checkpoint.open(Fixtures.sharded());
             var reference = SafetensorsReader.open(Fixtures.reference())) {
            Tensor embed = checkpoint.tensor("model.embed_tokens.weight");
            Tensor ids = reference.tensor("input_ids");
            Tensor hidden = reference.tensor("hidden_states.0");
            assertEquals(DType.I64, ids.dtype());
            assertEquals(DType.F32, hidden.dtype());
            assertArrayEquals(new int[] {2, 11, 64}, hidden.shape());
            for (int b = 0; b < 2; b++) {
                for (int s = 0; s < 11; s++) {
                    int token = Math.toIntExact(ids.getLong(b * 11L + s));
                    for (int h = 0; h < 64; h++) {
                        assertEquals(hidden.get(b, s, h), embed.get(token, h), "token " + token + " dim " + h);
                    }
                }
            }
        }
    }

    @Test
    void int64InputIdsReadAsWritten() {
        try (var reference = SafetensorsReader.open(Fixtures.reference())) {
            Tensor ids = reference.tensor("input_ids");
            long[] prompt = new long[5];
            for (int i = 0; i < 5; i++) {
                prompt[i] = ids.getLong(i);
            }
            assertArrayEquals(new long[] {309, 103, 428, 67, 304}, prompt);
            assertTrue(reference.metadata().isEmpty());
            assertEquals("input_ids", reference.entries().getFirst().name(), "entries come in data order");
        }
    }

    @Test
    void aSingleFileOpensAsACheckpoint() {
        try (var checkpoint = Checkpoint.open(Fixtures.reference())) {
            assertTrue(checkpoint.index().isEmpty());
            assertTrue(checkpoint.contains("logits"));
            assertArrayEquals(new int[] {2, 11, 512}, checkpoint.tensor("logits").shape());
        }
    }

    @Test
    void tensorsAreViewsOnTheMappingAndDieWithIt() {
        Tensor logits;
        try (var reader = SafetensorsReader.open(Fixtures.reference())) {
            logits = reader.tensor("logits");
            assertTrue(logits.segment().isNative(), "a mapped view, not a heap copy");
        }
        assertThrows(IllegalStateException.class, () -> logits.getFloat(0));
    }
}
