package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class CheckpointWriterTest {
    @TempDir
    Path dir;

    @Test
    void shardsAndIndexReadBackAsTheSameCheckpoint() throws IOException {
        var tensors = new LinkedHashMap<String, Tensor>();
        for (int i = 0; i < 5; i++) {
            Tensor t = Tensor.zeros(DType.BF16, 10, 10); // 200 bytes each
            t.fill(i);
            tensors.put("layer." + i + ".weight", t);
        }
        tensors.put("norm", Tensor.of(new float[] {1, 2, 3}, 3));
        List<Path> written = CheckpointWriter.write(dir, tensors, 450, Map.of("format", "pt"));

        assertEquals(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors", Checkpoint.INDEX_FILE),
                written.stream().map(p -> p.getFileName().toString()).toList());
        JsonNode index = Json.read(dir.resolve(Checkpoint.INDEX_FILE));
        assertEquals(1012, index.get("metadata").get("total_size").asLong());
        assertEquals(503, index.get("metadata").get("total_parameters").asLong());
        var names = new ArrayList<String>();
        index.get("weight_map").fieldNames().forEachRemaining(names::add);
        assertEquals(names.stream().sorted().toList(), names, "weight_map keys sorted as save_pretrained does");
        assertTrue(Files.readString(dir.resolve(Checkpoint.INDEX_FILE)).contains("\"total_size\": 1012"));

        try (var checkpoint = Checkpoint.open(dir)) {
            assertEquals(tensors.keySet(), new java.util.HashSet<>(checkpoint.names()));
            for (int i = 0; i < 5; i++) {
                assertEquals(i, checkpoint.tensor("layer." + i + ".weight").get(9, 9));
            }
            assertArrayEquals(new float[] {1, 2, 3}, checkpoint.tensor("norm").toFloatArray());
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(4, files.count(), "no temporary files left");
        }
    }

    @Test
    void whatFitsInOneShardIsASingleModelFile() {
        List<Path> written = CheckpointWriter.write(dir, Map.of("w", Tensor.zeros(4)), 1 << 20, Map.of());
        assertEquals(List.of(dir.resolve(Checkpoint.SINGLE_FILE)), written);
        try (var checkpoint = Checkpoint.open(dir)) {
            assertTrue(checkpoint.index().isEmpty());
            assertEquals(List.of("w"), List.copyOf(checkpoint.names()));
        }
    }
}
