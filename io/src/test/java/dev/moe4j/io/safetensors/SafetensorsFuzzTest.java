package dev.moe4j.io.safetensors;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

/**
 * Fuzzes the safetensors reader with whole files: the 8-byte header length, the JSON header and the data after
 * it. Every tensor of a file that opens is read, so a header that passes validation but points outside the data
 * is caught here. Seeds: {@code SafetensorsFuzzTestInputs/} (a regression test in every build; docs/FUZZING.md).
 */
class SafetensorsFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("safetensors");

    @FuzzTest
    void anySafetensorsFileOpensOrIsRefusedInOneLine(byte[] file) throws Exception {
        var path = FILES.write("model.safetensors", file);
        CleanRefusal.check(() -> {
            try (Checkpoint checkpoint = Checkpoint.open(path)) {
                for (String name : checkpoint.names()) {
                    Tensor t = checkpoint.tensor(name);
                    if (t.dtype() == DType.F32 || t.dtype() == DType.BF16 || t.dtype() == DType.F16) {
                        t.toFloatArray();
                    }
                }
            }
        });
    }
}
