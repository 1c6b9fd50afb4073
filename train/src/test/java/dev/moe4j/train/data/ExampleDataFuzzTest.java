package dev.moe4j.train.data;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

/**
 * Fuzzes example data (JSONL of objects: messages through Qwen2's chat template, prompt/completion, text, input_ids
 * with labels; the qwen2-moe fixture's tokenizer, vocabulary of 512): a file is read into examples, batched and
 * packed, or refused in one line naming the file, the line and the field. Seeds: {@code ExampleDataFuzzTestInputs/}.
 */
class ExampleDataFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("examples");

    @FuzzTest
    @DictionaryEntries({"{\"messages\": [", "{\"role\": \"assistant\", \"content\": \"", "{\"role\": \"user\", \"content\": \"",
            "{\"prompt\": ", "\"completion\": ", "{\"text\": ", "{\"input_ids\": [", "\"labels\": [", "-100", "511", "512",
            "<|im_end|>", "\u00e9"})
    void anyExampleFileReadsOrIsRefusedInOneLine(byte[] file) throws Exception {
        var path = FILES.write("data.jsonl", file);
        CleanRefusal.check(() -> {
            var examples = ExampleData.read(path, ExampleDataTest.qwen(ExampleDataTest.QWEN2));
            var parts = ExampleData.split(examples, 0.1);
            if (!parts.get(0).isEmpty()) {
                new ExampleBatches(parts.get(0), 2, 1, true).batch(0, 0, 1);
            }
            ExampleBatches.pack(examples);
        });
    }
}
