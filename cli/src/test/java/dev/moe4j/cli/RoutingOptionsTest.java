package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.Scorer;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.stream.StreamSupport;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The routing flags of generate, score and chat on the Mixtral fixture (8 experts, top-2): they compute what the
 * Java API computes with the same policy, the trained k changes nothing, and a policy the model cannot follow is
 * one line naming the flag.
 */
class RoutingOptionsTest {
    @TempDir
    Path dir;

    private static Cli.Result run(String... args) {
        return Cli.run(ModelFolder.Opener.CHECKPOINT, args);
    }

    private static int[] ids(JsonNode array) {
        return StreamSupport.stream(array.spliterator(), false).mapToInt(JsonNode::asInt).toArray();
    }

    @Test
    void generateFollowsTheRoutingFlagsAsTheJavaApiDoes() {
        Path model = Fixtures.model("mixtral", dir);
        var trained = run("generate", "--model", model.toString(), "--prompt-ids", "1,20,30", "--max-tokens", "6",
                "--json");
        var two = run("generate", "--model", model.toString(), "--prompt-ids", "1,20,30", "--max-tokens", "6",
                "--json", "--experts-per-token", "2");
        assertEquals(0, two.status(), two.err());
        assertArrayEquals(ids(Json.parse(trained.out(), "out").get("output_ids")),
                ids(Json.parse(two.out(), "out").get("output_ids")), "the trained k changes nothing");
        for (String[] flags : new String[][] {{"--experts-per-token", "1"}, {"--expert-top-p", "0.3", "--max-experts",
                "4"}, {"--expert-mask", "0:0,1;1:2", "--force-experts", "*:7"}, {"--expert-floor", "0.2"}}) {
            var args = new java.util.ArrayList<>(java.util.List.of("generate", "--model", model.toString(),
                    "--prompt-ids", "1,20,30", "--max-tokens", "6", "--json"));
            args.addAll(java.util.List.of(flags));
            var r = run(args.toArray(String[]::new));
            assertEquals(0, r.status(), r.err());
            JsonNode o = Json.parse(r.out(), "out");
            RoutingPolicy policy = RoutingPolicy.parse(o.get("routing").asText(), "routing");
            try (ModelFolder m = ModelFolder.open(model, ModelFolder.Opener.CHECKPOINT)) {
                var g = new Generator(m.model(), m.text()).generate(new int[] {1, 20, 30},
                        GenerationOptions.greedy(6, m.eosTokenIds()).withRouting(policy), GenerationListener.NONE);
                assertArrayEquals(g.outputIds(), ids(o.get("output_ids")), String.join(" ", flags));
            }
        }
    }

    @Test
    void scoreReportsThePerplexityUnderThePolicy() {
        Path model = Fixtures.model("mixtral", dir);
        var r = run("score", "--model", model.toString(), "--prompt-ids", "1,20,30,40,50,60", "--json",
                "--experts-per-token", "1");
        assertEquals(0, r.status(), r.err());
        JsonNode o = Json.parse(r.out(), "out");
        assertEquals("k=1", o.get("routing").asText());
        try (TransformerModel m = ModelLoader.load(model, CpuBackend.INSTANCE)) {
            int[] ids = {1, 20, 30, 40, 50, 60};
            double one = new Scorer(m).score(ids, null, RoutingPolicy.experts(1)).perplexity();
            double trained = new Scorer(m).score(ids, null).perplexity();
            assertEquals(one, o.get("perplexity").asDouble(), 1e-9 * one);
            assertNotEquals(trained, one);
        }
    }

    @Test
    void chatRoutesEveryTurnByThePolicy() {
        Path model = Fixtures.model("mixtral", dir);
        java.nio.file.Path template = dir.resolve("t.jinja");
        try {
            java.nio.file.Files.writeString(template, "{% for m in messages %}{{ m.content }}{% endfor %}");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        var r = Cli.run(ModelFolder.Opener.CHECKPOINT, "hello\nagain\n", false, "chat", "--model", model.toString(),
                "--template", template.toString(), "--max-tokens", "3", "--experts-per-token", "1");
        assertEquals(0, r.status(), r.err());
        assertEquals(2, r.err().lines().filter(l -> l.startsWith("(3 tokens")).count(), r.err());
    }

    @Test
    void aPolicyTheModelCannotFollowIsOneLineNamingTheFlag() {
        Path model = Fixtures.model("mixtral", dir);
        String[][] cases = {
                {"--experts-per-token", "9"},
                {"--expert-mask", "5:0"},
                {"--max-experts", "3"},
                {"--expert-top-p", "0"},
                {"--expert-mask", "0:x"},
                {"--capacity-overflow", "next-choice"},
                {"--experts-per-token", "1", "--expert-top-p", "0.5"},
        };
        String[] expected = {
                "--experts-per-token 9: the model's MoE layers have 8 experts",
                "--expert-mask 5:0: layer 5 is not an MoE layer of this model (MoE layers: 0,1)",
                "--max-experts bounds --expert-top-p; give it with top-p (or use --experts-per-token)",
                "--expert-top-p 0: expected a probability mass in (0, 1]",
                "--expert-mask '0:x': 'x' is not an index of 0 or more (expected LAYER:EXPERTS such as 3:0,5 or *:7,"
                        + " several joined by ';')",
                "--capacity-overflow applies to a capacity; give --capacity-factor too",
                "--experts-per-token and --expert-top-p both choose how many experts a token takes; give one",
        };
        for (int i = 0; i < cases.length; i++) {
            var args = new java.util.ArrayList<>(java.util.List.of("generate", "--model", model.toString(),
                    "--prompt-ids", "1,2"));
            args.addAll(java.util.List.of(cases[i]));
            var r = run(args.toArray(String[]::new));
            assertEquals(2, r.status(), r.err());
            assertEquals("moe4j: error: " + expected[i], r.err().strip());
        }
        var r = run("score", "--model", model.toString(), "--prompt-ids", "1,2", "--experts-per-token", "9");
        assertEquals("moe4j: error: --experts-per-token 9: the model's MoE layers have 8 experts", r.err().strip());
    }
}
