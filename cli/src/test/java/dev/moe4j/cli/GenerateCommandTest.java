package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.testing.ToyModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * {@code moe4j generate} over the mixtral fixture's config, tokenizer and generation config, with a toy model in
 * place of the weights so that the expected tokens are known: after token t it picks (5t + 3) mod 512.
 */
class GenerateCommandTest {
    @TempDir
    Path dir;

    private final Cli.ToyModels toys = new Cli.ToyModels();
    private final String model = Cli.resource("models/mixtral").toString();
    private final Tokenizer tokenizer = Tokenizer.load(Cli.resource("models/mixtral/tokenizer.json"));

    private static int[] chain(int last, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            last = (last * 5 + 3) % 512;
            out[i] = last;
        }
        return out;
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    @Test
    void theContinuationStreamsToStdoutAndTheSpeedsToStderr() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "5");
        assertEquals(0, r.status(), r.err());
        assertEquals(tokenizer.decode(chain(30, 5), true) + "\n", r.out());
        assertTrue(r.err().startsWith("moe4j: 3 prompt + 5 generated tokens (max tokens); load "), r.err());
        assertTrue(r.err().contains("first token") && r.err().contains("prefill") && r.err().contains("decode"));
        assertEquals(List.of("0:3", "3:1", "4:1", "5:1", "6:1"),
                toys.last().calls.stream().map(c -> c[0] + ":" + c[1]).toList(), "one prefill, then one at a time");
    }

    @Test
    void askingForCudaWithoutAGpuIsOneLineBeforeAnyWeightIsOpened() {
        assumeFalse(dev.moe4j.cuda.Cuda.available(), "a GPU is present");
        var r = Cli.run(toys, "generate", "--device", "cuda", "--model", model, "--prompt-ids", "1,20", "--max-tokens", "2");
        assertEquals(Main.EXIT_BAD_INPUT, r.status());
        assertTrue(r.err().startsWith("moe4j: error: --device cuda: no usable NVIDIA GPU: "), r.err());
        assertEquals(1, r.err().trim().lines().count(), r.err());
        assertEquals("", r.out());
        assertTrue(toys.opened.isEmpty(), "no model opened");
    }

    @Test
    void aJsonSchemaConstrainsTheOutputAndABadOneIsOneLine() throws IOException {
        Path schema = dir.resolve("answer.json");
        Files.writeString(schema, "{\"type\": \"object\", \"properties\": {\"answer\": {\"enum\": [\"yes\", \"no\"]},"
                + " \"sure\": {\"type\": \"boolean\"}}, \"required\": [\"answer\", \"sure\"]}");
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "80",
                "--json-schema", schema.toString(), "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        assertEquals("eos", o.get("stop_reason").asText(), o.toString());
        JsonNode answer = Json.parse(o.get("text").asText(), "text");
        assertTrue(List.of("yes", "no").contains(answer.get("answer").asText()), answer.toString());
        assertTrue(answer.get("sure").isBoolean(), answer.toString());

        Files.writeString(schema, "{\"type\": \"string\", \"format\": \"email\"}");
        var bad = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1", "--json-schema", schema.toString());
        assertEquals(2, bad.status());
        assertEquals(1, bad.err().strip().lines().count(), bad.err());
        assertTrue(bad.err().contains(schema + ".format: the keyword format is not supported"), bad.err());
    }

    @Test
    void jsonHoldsIdsTextStopReasonTimingsAndSpeeds() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "4", "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        assertArrayEquals(new int[] {1, 20, 30}, ints(o.get("prompt_ids")));
        assertArrayEquals(chain(30, 4), ints(o.get("output_ids")));
        assertEquals(tokenizer.decode(chain(30, 4), true), o.get("text").asText());
        assertEquals("max_tokens", o.get("stop_reason").asText());
        assertFalse(o.get("sampling").get("do_sample").asBoolean(), "the fixture's generation_config is greedy");
        for (String phase : List.of("load", "prefill", "time_to_first_token", "decode")) {
            assertTrue(o.get("timings_s").get(phase).asDouble() >= 0, phase);
        }
        for (String rate : List.of("tokens_per_s", "prefill_tokens_per_s", "decode_tokens_per_s")) {
            assertTrue(o.get(rate).isNumber(), rate);
        }
        assertEquals(1, r.out().lines().count(), "one line");
    }

    @Test
    void aTextPromptGetsTheTokenizersSpecialTokens() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt", "hello world", "--max-tokens", "2", "--json");
        assertEquals(0, r.status(), r.err());
        int[] expected = tokenizer.encodeIds("hello world", true);
        assertEquals(1, expected[0], "Mixtral's tokenizer starts with <s>");
        assertArrayEquals(expected, ints(Json.parse(r.out(), "stdout").get("prompt_ids")));
    }

    @Test
    void theEosIdOfGenerationConfigEndsTheReply() {
        // 368 -> 307 -> 2, and 2 is eos_token_id in generation_config.json
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "368", "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        assertArrayEquals(new int[] {307}, ints(o.get("output_ids")));
        assertEquals("eos", o.get("stop_reason").asText());
    }

    @Test
    void theSameSeedGivesTheSameSampleAndTheSamplingFlagsTurnSamplingOn() {
        String[] args = {"generate", "--model", model, "--prompt-ids", "5", "--max-tokens", "20", "--temperature",
                "1.3", "--top-k", "0", "--seed", "1234", "--json"};
        var first = Cli.run(toys, args);
        assertEquals(0, first.status(), first.err());
        JsonNode a = Json.parse(first.out(), "a");
        JsonNode b = Json.parse(Cli.run(toys, args).out(), "b");
        assertEquals(a.get("output_ids"), b.get("output_ids"));
        assertTrue(a.get("sampling").get("do_sample").asBoolean());
        assertEquals(1234, a.get("sampling").get("seed").asLong());
        assertFalse(java.util.Arrays.equals(chain(5, 20), ints(a.get("output_ids"))), "not the greedy chain");
        args[args.length - 2] = "99";
        JsonNode c = Json.parse(Cli.run(toys, args).out(), "c");
        assertNotEquals(a.get("output_ids"), c.get("output_ids"));
    }

    @Test
    void flagsWinOverGenerationConfigWhichWinsOverTheDefaults() throws IOException {
        Path folder = Cli.copyModel("mixtral", dir);
        Files.writeString(folder.resolve("generation_config.json"),
                "{\"do_sample\": true, \"temperature\": 0.7, \"top_p\": 0.9, \"eos_token_id\": 2}");
        JsonNode fromFile = Json.parse(Cli.run(toys, "generate", "--model", folder.toString(), "--prompt-ids", "5",
                "--max-tokens", "3", "--json").out(), "stdout").get("sampling");
        assertTrue(fromFile.get("do_sample").asBoolean());
        assertEquals(0.7, fromFile.get("temperature").asDouble());
        assertEquals(0.9, fromFile.get("top_p").asDouble());
        assertEquals(50, fromFile.get("top_k").asInt(), "transformers' default top-k");

        JsonNode flags = Json.parse(Cli.run(toys, "generate", "--model", folder.toString(), "--prompt-ids", "5",
                "--max-tokens", "3", "--temperature", "0.2", "--top-k", "5", "--json").out(), "stdout")
                .get("sampling");
        assertEquals(0.2, flags.get("temperature").asDouble());
        assertEquals(5, flags.get("top_k").asInt());
        assertEquals(0.9, flags.get("top_p").asDouble(), "what no flag overrides stays");

        var greedy = Cli.run(toys, "generate", "--model", folder.toString(), "--prompt-ids", "5", "--max-tokens", "3",
                "--greedy", "--json");
        JsonNode g = Json.parse(greedy.out(), "stdout");
        assertFalse(g.get("sampling").get("do_sample").asBoolean());
        assertArrayEquals(chain(5, 3), ints(g.get("output_ids")));
    }

    @Test
    void aStopStringEndsTheReplyAndIsNotPrinted() {
        String full = tokenizer.decode(chain(30, 6), true);
        String stop = tokenizer.decode(new int[] {chain(30, 6)[3]}, true).strip();
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "6",
                "--stop", stop, "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        assertEquals("stop_string", o.get("stop_reason").asText());
        String text = o.get("text").asText();
        assertFalse(text.contains(stop), text);
        assertEquals(full.substring(0, full.indexOf(stop)), text);
    }

    @Test
    void theExpertTraceHasOneLinePerTokenPerLayerWithTheGeneratedTokensToo() throws IOException {
        Path file = dir.resolve("trace.jsonl");
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "3",
                "--trace-experts", file.toString());
        assertEquals(0, r.status(), r.err());
        List<String> lines = Files.readAllLines(file);
        int[] tokens = {1, 20, 30, chain(30, 3)[0], chain(30, 3)[1], chain(30, 3)[2]};
        assertEquals(tokens.length * 2, lines.size(), "6 tokens x 2 layers");
        for (int i = 0; i < lines.size(); i++) {
            JsonNode o = Json.parse(lines.get(i), "line " + i);
            int position = i / 2;
            int layer = i % 2;
            assertEquals(position, o.get("position").asInt());
            assertEquals(layer, o.get("layer").asInt());
            assertEquals(tokens[position], o.get("token_id").asInt());
            assertEquals(tokenizer.decode(new int[] {tokens[position]}, false), o.get("token").asText());
            assertEquals((tokens[position] + layer) % ToyModel.EXPERTS, o.get("experts").get(0).asInt());
            assertEquals(0.75, o.get("weights").get(0).asDouble(), 1e-6);
        }
        assertEquals(List.of("trace.jsonl"), Cli.listing(dir));
    }

    @Test
    void aFailedRunLeavesNoTraceBehind() {
        Path file = dir.resolve("trace.jsonl");
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,600", "--trace-experts",
                file.toString());
        assertEquals(2, r.status());
        assertEquals(List.of(), Cli.listing(dir));
    }

    @Test
    void aTracePathThatCannotBeWrittenIsRefusedBeforeGeneratingAndNoFolderIsMade() throws IOException {
        Path missing = dir.resolve("no-such-folder").resolve("trace.jsonl");
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20", "--trace-experts",
                missing.toString());
        assertEquals(2, r.status(), r.err());
        assertEquals("moe4j: error: --trace-experts: " + missing + ": the folder " + missing.getParent()
                + " does not exist\n", r.err());
        assertEquals("", r.out());
        assertTrue(toys.opened.isEmpty(), "nothing was loaded");
        assertEquals(List.of(), Cli.listing(dir));

        Path file = Files.writeString(dir.resolve("a-file"), "x");
        r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20", "--trace-experts",
                file.resolve("trace.jsonl").toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("is not a folder"), r.err());
        assertTrue(toys.opened.isEmpty(), "nothing was loaded");
    }

    @Test
    void showExpertsWithJsonIsRefusedNamingWhatGivesExpertsAsJson() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20", "--json", "--show-experts");
        assertEquals(2, r.status(), r.err());
        assertEquals("", r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("--show-experts") && r.err().contains("--json")
                && r.err().contains("--trace-experts"), r.err());
        assertTrue(toys.opened.isEmpty(), "nothing was loaded");
    }

    @Test
    void showExpertsColoursEachTokenByItsFirstExpertInTheLastMoeLayer() {
        // after 100 the toy picks 503, 470, 305: whole-text tokens (ids 3..258 are the byte tokens <0x00>..<0xFF>)
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,100", "--max-tokens", "3",
                "--show-experts", "--color", "always");
        assertEquals(0, r.status(), r.err());
        int[] out = chain(100, 3);
        var expected = new StringBuilder();
        for (int i = 0; i < out.length; i++) {
            // layer 1 is the last of the fixture's two MoE layers; the toy routes token t there to (t + 1) mod 4 first
            String piece = tokenizer.decode(java.util.Arrays.copyOf(out, i + 1), true)
                    .substring(tokenizer.decode(java.util.Arrays.copyOf(out, i), true).length());
            expected.append(ExpertColors.code((out[i] + 1) % ToyModel.EXPERTS)).append(piece).append("\u001b[0m");
        }
        List<String> lines = r.out().lines().toList();
        assertEquals(expected.toString(), lines.get(0));
        assertTrue(lines.get(1).startsWith("experts of layer 1:"), r.out());
    }

    @Test
    void withoutATerminalShowExpertsPrintsPlainTextUnlessForced() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1,20,30", "--max-tokens", "3",
                "--show-experts", "0");
        assertEquals(0, r.status(), r.err());
        assertFalse(r.out().contains("\u001b["), r.out());
        var terminal = Cli.run(toys, "", true, "generate", "--model", model, "--prompt-ids", "1,20,30",
                "--max-tokens", "3", "--show-experts", "0");
        assertTrue(terminal.out().contains("\u001b[38;5;"), "a terminal gets colours");
        assertTrue(terminal.out().contains("experts of layer 0:"));
    }

    @Test
    void showExpertsRefusesALayerThatIsNotAnMoeLayer() {
        var r = Cli.run(toys, "generate", "--model", model, "--prompt-ids", "1", "--show-experts", "7");
        assertEquals(2, r.status());
        assertEquals("moe4j: error: --show-experts: layer 7 is not an MoE layer of this model (MoE layers: 0..1)\n",
                r.err());
        assertEquals("", r.out());
    }

    @Test
    void helpSaysWhichSettingWins() {
        var r = Cli.run(toys, "generate", "--help");
        assertEquals(0, r.status());
        assertTrue(r.out().contains("a flag wins over generation_config.json"), r.out());
        assertTrue(r.out().contains("--prompt-ids"));
        assertTrue(r.out().contains("--trace-experts"));
    }
}
