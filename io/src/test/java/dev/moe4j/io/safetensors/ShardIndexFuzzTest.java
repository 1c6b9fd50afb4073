package dev.moe4j.io.safetensors;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

import java.util.Map;

/**
 * Fuzzes {@code model.safetensors.index.json} beside two valid shards (a.safetensors holds x and y,
 * b.safetensors holds z): a weight_map naming missing, wrong or foreign shards, tensors a shard does not hold,
 * or anything that is not an index, must be refused in one line before a tensor is read. Seeds:
 * {@code ShardIndexFuzzTestInputs/}.
 */
class ShardIndexFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("index");

    static {
        SafetensorsWriter.write(FILES.folder().resolve("a.safetensors"), Map.of(
                "x", Tensor.of(new float[] {1, 2, 3, 4}, 2, 2), "y", Tensor.of(new float[] {5}, 1)));
        SafetensorsWriter.write(FILES.folder().resolve("b.safetensors"), Map.of("z", Tensor.of(new float[] {6, 7}, 2)));
    }

    @FuzzTest
    @DictionaryEntries({"\"weight_map\"", "\"metadata\"", "\"total_size\"", "\"a.safetensors\"", "\"b.safetensors\"",
            "\"x\"", "\"y\"", "\"z\"", "\"../\""})
    void anyShardIndexOpensOrIsRefusedInOneLine(byte[] index) throws Exception {
        var path = FILES.write(Checkpoint.INDEX_FILE, index);
        CleanRefusal.check(() -> {
            try (Checkpoint checkpoint = Checkpoint.open(path)) {
                for (String name : checkpoint.names()) {
                    checkpoint.tensor(name).toFloatArray();
                }
            }
        });
    }
}
