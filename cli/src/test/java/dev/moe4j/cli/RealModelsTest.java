package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The commands end to end on real weights: the seven tiny models transformers 5.17 saved, loaded by
 * {@code ModelLoader}, checked against what transformers computed for them (greedy continuations, logits, router
 * logits).
 */
class RealModelsTest {
    @TempDir
    Path dir;

    private static Cli.Result run(String... args) {
        return Cli.run(Main.DEFAULT_MODELS, args);
    }

    private static Cli.Result withInput(String stdin, String... args) {
        return Cli.run(Main.DEFAULT_MODELS, stdin, false, args);
    }

    static final List<String> FIXTURES = Fixtures.ALL;

    @ParameterizedTest
    @FieldSource("FIXTURES")
    void greedyGenerationMatchesTransformersGenerate(String name) {
        Path model = Fixtures.model(name, dir);
        JsonNode greedy = Fixtures.reference(name).get("greedy");
        int[] prompt = Fixtures.ints(greedy.get("prompt"));
        int[] all = Fixtures.ints(greedy.get("output"));
        int[] expected = java.util.Arrays.copyOfRange(all, prompt.length, all.length);
        var r = run("generate", "--model", model.toString(), "--prompt-ids", Fixtures.idList(prompt),
                "--max-tokens", Integer.toString(expected.length), "--greedy", "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        assertArrayEquals(expected, Fixtures.ints(o.get("output_ids")), name);
        assertEquals("max_tokens", o.get("stop_reason").asText());
    }

    @Test
    void scoresAreTheLogSoftmaxOfTransformersLogits() {
        String name = "mixtral";
        Path model = Fixtures.model(name, dir);
        Tensor inputIds = Fixtures.referenceTensor(name, "input_ids", dir);
        Tensor logits = Fixtures.referenceTensor(name, "logits", dir);
        int length = inputIds.dim(1);
        int vocab = logits.dim(2);
        int[] ids = new int[length];
        for (int t = 0; t < length; t++) {
            ids[t] = (int) inputIds.getLong(t);
        }
        var r = run("score", "--model", model.toString(), "--prompt-ids", Fixtures.idList(ids), "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode lps = Json.parse(r.out(), "stdout").get("log_probs");
        double nll = 0;
        for (int t = 1; t < length; t++) {
            // log-softmax of transformers' logits of sequence 0 at t − 1, in double
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                max = Math.max(max, logits.getFloat((long) (t - 1) * vocab + v));
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits.getFloat((long) (t - 1) * vocab + v) - max);
            }
            double expected = logits.getFloat((long) (t - 1) * vocab + ids[t]) - max - Math.log(sum);
            assertEquals(expected, lps.get(t).asDouble(), 1e-4, "token " + t);
            nll -= expected;
        }
        assertEquals(Math.exp(nll / (length - 1)), Json.parse(r.out(), "stdout").get("perplexity").asDouble(), 1e-3);
    }

    @Test
    void theTraceHoldsTheTopExpertsOfTransformersRouterLogits() throws IOException {
        // Mixtral: softmax over 8 experts, top-2, renormalised; router_logits.L is [2 x 11 tokens, 8]
        String name = "mixtral";
        Path model = Fixtures.model(name, dir);
        Tensor inputIds = Fixtures.referenceTensor(name, "input_ids", dir);
        int length = inputIds.dim(1);
        int[] ids = new int[length];
        for (int t = 0; t < length; t++) {
            ids[t] = (int) inputIds.getLong(t);
        }
        Path trace = dir.resolve("trace.jsonl");
        var r = run("score", "--model", model.toString(), "--prompt-ids", Fixtures.idList(ids), "--trace-experts",
                trace.toString());
        assertEquals(0, r.status(), r.err());
        List<String> lines = Files.readAllLines(trace);
        assertEquals(length * 2, lines.size());
        for (String line : lines) {
            JsonNode o = Json.parse(line, "trace");
            int t = o.get("position").asInt();
            int layer = o.get("layer").asInt();
            Tensor router = Fixtures.referenceTensor(name, "router_logits." + layer, dir);
            int experts = router.dim(1);
            int first = -1, second = -1;
            for (int e = 0; e < experts; e++) {
                float x = router.getFloat((long) t * experts + e);
                if (first < 0 || x > router.getFloat((long) t * experts + first)) {
                    second = first;
                    first = e;
                } else if (second < 0 || x > router.getFloat((long) t * experts + second)) {
                    second = e;
                }
            }
            assertEquals("[" + first + "," + second + "]", o.get("experts").toString(), "position " + t);
            double a = router.getFloat((long) t * experts + first);
            double b = router.getFloat((long) t * experts + second);
            double wFirst = 1 / (1 + Math.exp(b - a));
            assertEquals(wFirst, o.get("weights").get(0).asDouble(), 1e-4);
            assertEquals(1 - wFirst, o.get("weights").get(1).asDouble(), 1e-4);
            assertEquals(ids[t], o.get("token_id").asInt());
        }
    }

    @Test
    void samplingARealModelRepeatsWithTheSameSeed() {
        Path model = Fixtures.model("qwen3-moe", dir);
        String[] args = {"generate", "--model", model.toString(), "--prompt", "Hello", "--max-tokens", "8",
                "--temperature", "0.9", "--top-p", "0.9", "--seed", "5", "--json"};
        var a = run(args);
        var b = run(args);
        assertEquals(0, a.status(), a.err());
        assertEquals(Json.parse(a.out(), "a").get("output_ids"), Json.parse(b.out(), "b").get("output_ids"));
    }

    @Test
    void aChatTurnRunsOnARealModel() throws IOException {
        Path model = Fixtures.model("mixtral", dir);
        Files.copy(Cli.resource("models/mixtral/tokenizer_config.json"), model.resolve("tokenizer_config.json"));
        var r = withInput("Hello there\n/exit\n", "chat", "--model", model.toString(), "--max-tokens", "5");
        assertEquals(0, r.status(), r.err());
        assertEquals(1, r.out().lines().count(), r.out());
        assertTrue(r.err().contains("(5 tokens, max tokens;") || r.err().contains("eos;"), r.err());
    }

    @Test
    void aShardNamedByTheIndexButAbsentIsAOneLineError() throws IOException {
        Path model = Fixtures.model("mixtral-bf16-sharded", dir);
        Files.delete(model.resolve("model-00003-of-00004.safetensors"));
        var r = run("generate", "--model", model.toString(), "--prompt-ids", "1,2", "--trace-experts",
                dir.resolve("t.jsonl").toString());
        assertEquals(2, r.status());
        assertEquals("", r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: ") && r.err().contains("model-00003-of-00004.safetensors"),
                r.err());
        assertFalse(Files.exists(dir.resolve("t.jsonl")));
    }

    @Test
    void aTruncatedWeightsFileIsAOneLineError() throws IOException {
        Path model = Fixtures.model("qwen3-moe", dir);
        Path weights = model.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(weights);
        Files.write(weights, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        var r = run("score", "--model", model.toString(), "--text", "hello world");
        assertEquals(2, r.status());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: " + weights), r.err());
    }
}
