package dev.moe4j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Mistakes in what generate, score and chat are given: each is one line "moe4j: error: ..." naming the file or
 * flag at fault, exit status 2, nothing on stdout and nothing written; the weights are not opened when the small
 * files already show the mistake.
 */
class BadInputTest {
    @TempDir
    Path dir;

    private final Cli.ToyModels toys = new Cli.ToyModels();

    /** Runs generate on {@code folder} and checks the error's form; returns the message after "moe4j: error: ". */
    private String error(Path folder, String... extra) {
        List<String> before = Cli.listing(folder);
        var args = new java.util.ArrayList<>(List.of("generate", "--model", folder.toString()));
        if (extra.length == 0) {
            args.addAll(List.of("--prompt-ids", "1,2,3"));
        }
        args.addAll(List.of(extra));
        var r = Cli.run(toys, args.toArray(String[]::new));
        assertEquals(2, r.status(), r.err());
        assertEquals("", r.out());
        assertTrue(r.err().startsWith("moe4j: error: "), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertEquals(before, Cli.listing(folder), "nothing written into the model folder");
        return r.err().substring("moe4j: error: ".length()).strip();
    }

    private Path model() {
        return Cli.copyModel("mixtral", dir);
    }

    private static void edit(Path file, String from, String to) throws IOException {
        String text = Files.readString(file);
        assertTrue(text.contains(from), from);
        Files.writeString(file, text.replace(from, to));
    }

    @Test
    void aMissingFolder() {
        var r = Cli.run(toys, "generate", "--model", dir.resolve("nope").toString(), "--prompt", "hi");
        assertEquals(2, r.status());
        assertEquals("moe4j: error: " + dir.resolve("nope") + ": no such folder or file (expected a model folder"
                + " with config.json, tokenizer.json and safetensors weights, or a .gguf file)\n", r.err());
    }

    @Test
    void aFolderWithoutConfigJson() throws IOException {
        Path folder = model();
        Files.delete(folder.resolve("config.json"));
        assertEquals(folder.resolve("config.json") + ": no such file", error(folder));
        assertTrue(toys.opened.isEmpty());
    }

    @Test
    void aCorruptConfigJson() throws IOException {
        Path folder = model();
        Files.writeString(folder.resolve("config.json"), "{\"model_type\": \"mixtral\", ");
        assertTrue(error(folder).startsWith(folder.resolve("config.json") + ": not valid JSON"));
    }

    @Test
    void anUnknownModelType() throws IOException {
        Path folder = model();
        edit(folder.resolve("config.json"), "\"model_type\": \"mixtral\"", "\"model_type\": \"llama\"");
        assertEquals(folder.resolve("config.json") + ": unsupported model_type 'llama'; supported: mixtral,"
                + " qwen2_moe, qwen3_moe, olmoe, deepseek_v3, gpt_oss, moe4j", error(folder));
        assertTrue(toys.opened.isEmpty());
    }

    @Test
    void aMissingTokenizer() throws IOException {
        Path folder = model();
        Files.delete(folder.resolve("tokenizer.json"));
        assertTrue(error(folder).startsWith(folder.resolve("tokenizer.json").toString()), "names the file");
        assertTrue(toys.opened.isEmpty());
    }

    @Test
    void aTokenizerWhoseIdsDoNotFitTheModel() throws IOException {
        Path folder = model();
        edit(folder.resolve("config.json"), "\"vocab_size\": 512", "\"vocab_size\": 300");
        assertEquals(folder.resolve("tokenizer.json") + ": the tokenizer has ids up to 511 but config.json"
                + " vocab_size is 300: the tokenizer does not belong to this model", error(folder));
        assertTrue(toys.opened.isEmpty());
    }

    @Test
    void aCorruptGenerationConfig() throws IOException {
        Path folder = model();
        Files.writeString(folder.resolve("generation_config.json"), "{\"top_k\": \"many\"}");
        assertEquals(folder.resolve("generation_config.json") + ": field 'top_k' must be an integer, got the string"
                + " \"many\"", error(folder));
    }

    @Test
    void aPromptLongerThanTheContext() throws IOException {
        Path folder = model();
        edit(folder.resolve("config.json"), "\"max_position_embeddings\": 128", "\"max_position_embeddings\": 4");
        assertEquals("the prompt has 5 tokens but the model's context holds 4 (config.json"
                + " max_position_embeddings)", error(folder, "--prompt-ids", "1,2,3,4,5"));
        var r = Cli.run(toys, "score", "--model", folder.toString(), "--prompt-ids", "1,2,3,4,5");
        assertEquals(2, r.status());
        assertTrue(r.err().contains("context holds 4"), r.err());
    }

    @Test
    void promptIdsThatAreNotIdsOrOutsideTheVocabulary() {
        Path folder = model();
        assertEquals("--prompt-ids: expected comma-separated token ids like 1,2,3; 'x' is not an id",
                error(folder, "--prompt-ids", "1,x"));
        assertEquals("prompt token 1 has id 512, outside the model's vocabulary of 512 ids (config.json vocab_size)",
                error(folder, "--prompt-ids", "1,512"));
    }

    @Test
    void badFlagValuesNameTheFlag() {
        Path folder = model();
        assertEquals("--top-p must be in (0, 1], got 2.0", error(folder, "--prompt-ids", "1", "--top-p", "2"));
        assertEquals("--greedy and --sample contradict each other; give one",
                error(folder, "--prompt-ids", "1", "--greedy", "--sample"));
        assertEquals("--color: expected auto, always or never, got 'rainbow'",
                error(folder, "--prompt-ids", "1", "--color", "rainbow"));
        assertEquals("--max-tokens must be positive, got 0", error(folder, "--prompt-ids", "1", "--max-tokens", "0"));
    }

    @Test
    void aTraceFileThatIsAFolder() {
        Path folder = model();
        assertEquals("--trace-experts: " + dir + " is a folder; give a file name",
                error(folder, "--prompt-ids", "1", "--trace-experts", dir.toString()));
    }

    @Test
    void neitherPromptNorPromptIds() {
        var r = Cli.run(toys, "generate", "--model", model().toString());
        assertEquals(2, r.status());
        assertTrue(r.err().startsWith("moe4j: error: Missing required argument"), r.err());
    }
}
