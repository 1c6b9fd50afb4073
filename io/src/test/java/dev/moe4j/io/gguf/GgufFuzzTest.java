package dev.moe4j.io.gguf;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;
import dev.moe4j.io.tokenizer.Tokenizer;

/**
 * Fuzzes the GGUF reader with whole files: header, metadata, tensor infos and data. Every tensor of a file that
 * opens is decoded (the block types through their codecs), and a file with a vocabulary has its tokenizer built and
 * run, so an info that passes validation but points outside the data, or a vocabulary whose merges or types lie, is
 * caught here. Seeds: {@code GgufFuzzTestInputs/} (a regression test in every build; docs/FUZZING.md).
 */
class GgufFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("gguf");

    @FuzzTest
    void anyGgufFileOpensOrIsRefusedInOneLine(byte[] file) throws Exception {
        var path = FILES.write("model.gguf", file);
        CleanRefusal.check(() -> {
            try (GgufReader reader = GgufReader.open(path)) {
                for (GgufTensorInfo info : reader.tensors()) {
                    Tensor t = reader.tensor(info.name());
                    if (t.size() <= 1 << 16) {
                        t.toFloatArray();
                    }
                }
                var fields = new GgufFields(path, reader.metadata());
                if (fields.has("tokenizer.ggml.model")) {
                    Tokenizer tokenizer = Tokenizer.fromGguf(fields);
                    tokenizer.decode(tokenizer.encodeIds("Hello, world: ünïcödé 123!", true), false);
                }
            }
        });
    }
}
