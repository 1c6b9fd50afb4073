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

/** {@code moe4j score} with the toy model, whose log-probabilities can be computed here directly. */
class ScoreCommandTest {
    @TempDir
    Path dir;

    private final Cli.ToyModels toys = new Cli.ToyModels();
    private final String model = Cli.resource("models/mixtral").toString();
    private final Tokenizer tokenizer = Tokenizer.load(Cli.resource("models/mixtral/tokenizer.json"));

    /** log-softmax at position t − 1 of the toy's logits, taken at ids[t]. */
    private static double logProb(ToyModel toy, int[] ids, int t) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < 512; v++) {
            max = Math.max(max, toy.logit(ids[t - 1], t - 1, v));
        }
        double sum = 0;
        for (int v = 0; v < 512; v++) {
            sum += Math.exp(toy.logit(ids[t - 1], t - 1, v) - max);
        }
        return toy.logit(ids[t - 1], t - 1, ids[t]) - max - Math.log(sum);
    }

    @Test
    void jsonHoldsEachTokensLogProbabilityAndThePerplexity() {
        var r = Cli.run(toys, "score", "--model", model, "--text", "Hello there, world", "--json");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "stdout");
        int[] ids = tokenizer.encodeIds("Hello there, world", true);
        assertEquals(ids.length, o.get("ids").size());
        assertTrue(o.get("log_probs").get(0).isNull(), "the first token is not predicted");
        double nll = 0;
        for (int t = 1; t < ids.length; t++) {
            assertEquals(ids[t], o.get("ids").get(t).asInt());
            double expected = logProb(toys.last(), ids, t);
            assertEquals(expected, o.get("log_probs").get(t).asDouble(), 1e-5, "token " + t);
            nll -= expected;
        }
        assertEquals(Math.exp(nll / (ids.length - 1)), o.get("perplexity").asDouble(), 1e-4);
        assertEquals(ids.length - 1, o.get("scored_tokens").asInt());
        assertEquals(List.of("0:" + ids.length), toys.last().calls.stream().map(c -> c[0] + ":" + c[1]).toList(),
                "one forward pass over the whole text");
    }

    @Test
    void theTableListsEveryTokenAndEndsWithThePerplexity() {
        var r = Cli.run(toys, "score", "--model", model, "--prompt-ids", "1,100,503");
        assertEquals(0, r.status(), r.err());
        List<String> lines = r.out().lines().toList();
        assertEquals(5, lines.size(), r.out());
        assertTrue(lines.get(0).contains("log-prob"));
        assertTrue(lines.get(1).strip().startsWith("0         1"), lines.get(1));
        assertTrue(lines.get(4).startsWith("perplexity ") && lines.get(4).contains("over 2 tokens"), lines.get(4));
        // 503 follows 100 in the toy's chain: its log-probability is the high one
        double lp = Double.parseDouble(lines.get(3).trim().split("\\s+")[2]);
        assertEquals(logProb(toys.last(), new int[] {1, 100, 503}, 2), lp, 1e-4);
    }

    @Test
    void scoringCanTraceTheExperts() throws IOException {
        Path file = dir.resolve("score.jsonl");
        var r = Cli.run(toys, "score", "--model", model, "--prompt-ids", "1,100,503", "--trace-experts",
                file.toString());
        assertEquals(0, r.status(), r.err());
        assertEquals(6, Files.readAllLines(file).size(), "3 tokens x 2 layers");
    }

    @Test
    void oneTokenCannotBeScored() {
        var r = Cli.run(toys, "score", "--model", model, "--prompt-ids", "1");
        assertEquals(2, r.status());
        assertEquals("moe4j: error: scoring needs at least 2 tokens (the first one is only context), got 1\n",
                r.err());
    }
}
