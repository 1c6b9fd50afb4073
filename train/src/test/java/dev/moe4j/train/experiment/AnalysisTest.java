package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import dev.moe4j.train.data.TokenCache;
import dev.moe4j.train.data.TrainingData;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The routing analysis and the causal evaluation on small random models over a two-domain text. */
class AnalysisTest {
    @TempDir
    Path dir;
    TrainingData data;

    @BeforeEach
    void corpus() throws Exception {
        var random = new SplittableRandom(7);
        String[] words = {"the", "king", "speaks", "to", "his", "lord", "and", "lady"};
        var prose = new StringBuilder();
        var code = new StringBuilder();
        for (int i = 0; i < 400; i++) {
            prose.append(words[random.nextInt(words.length)]).append(i % 9 == 8 ? ".\n" : " ");
            code.append("    int x").append(random.nextInt(50)).append(" = size(").append(random.nextInt(1000))
                    .append(");\n");
        }
        Files.writeString(dir.resolve("prose.txt"), prose);
        Files.writeString(dir.resolve("prose.valid.txt"), prose.substring(0, 1500));
        Files.writeString(dir.resolve("code.txt"), code);
        Files.writeString(dir.resolve("code.valid.txt"), code.substring(0, 1500));
        data = TrainingData.prepare(List.of(dir.resolve("prose.txt"), dir.resolve("code.txt")), 0.1,
                Optional.empty(), 300, new TokenCache(dir.resolve("cache")), s -> { });
    }

    private Transformer model(String... flags) {
        var values = new LinkedHashMap<String, String>();
        for (int i = 0; i < flags.length; i += 2) {
            values.put(flags[i], flags[i + 1]);
        }
        values.putAll(Map.of("tiny", "true", "vocab", Integer.toString(data.vocabSize())));
        var config = TrainConfig.parse(TrainSettings.resolve(Map.of(), values)).model().orElseThrow();
        return Transformer.initialize(config, 3);
    }

    @Test
    void tokenChoiceGivesTheSameLossTokenByTokenAsInOneBatch() {
        int[][] sequences = ExperimentRunner.spread(data.validation(), 16, 3);
        Transformer model = model();
        var losses = CausalEvaluation.of(model, model, sequences);
        assertEquals(3 * 15, losses.tokens());
        assertEquals(losses.batch(), losses.causal(), 1e-4 * losses.batch());
    }

    @Test
    void softMoeMixesTheTokensOfABatchSoItsBatchLossIsNotTheCausalOne() {
        int[][] sequences = ExperimentRunner.spread(data.validation(), 16, 3);
        Transformer soft = model("router", "soft", "slots-per-expert", "2");
        var losses = CausalEvaluation.of(soft, soft, sequences);
        assertTrue(Math.abs(losses.batch() - losses.causal()) > 1e-4, losses.toString());
    }

    @Test
    void expertChoiceDecodedByItsPredictorIsComparedWithTheSameWeightsRoutedAsInTraining() {
        int[][] sequences = ExperimentRunner.spread(data.validation(), 16, 3);
        String[] expertChoice = {"router", "expert-choice", "capacity-factor", "2", "expert-choice-decode"};
        Transformer causal = model(concat(expertChoice, "predictor"));
        Transformer batch = model(concat(expertChoice, "batch"));
        var losses = CausalEvaluation.of(causal, batch, sequences);
        // The predictor decides per token, so feeding the windows whole routes them as token by token does.
        assertEquals(CausalEvaluation.batch(causal, sequences), losses.causal(), 1e-4 * losses.causal());
        assertTrue(Math.abs(losses.gap()) > 1e-4, "top-C of the batch is not what an untrained predictor picks: "
                + losses);
        var agreement = CausalEvaluation.agreement(causal, batch, sequences);
        assertEquals(causal.moeLayerIndices().size(), agreement.size());
        int experts = causal.moeLayers().getFirst().config().experts();
        var first = agreement.getFirst();
        assertEquals(3L * 16 * experts, first.pairs());
        // Each expert of the first layer takes its top-C of the 48 tokens: 2 × 48 / experts each.
        assertEquals(2L * 3 * 16, first.truePositives() + first.falseNegatives());
        assertTrue(first.accuracy() < 1, "an untrained predictor is not the batch's top-C: " + first);
        var self = CausalEvaluation.agreement(batch, batch, sequences).getFirst();
        assertEquals(1.0, self.accuracy());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void theFirstChoiceIsTheTopRankedExpertOrTheMostProbableOne() {
        int[] tokens = java.util.Arrays.copyOf(data.validation().tokens(), 32);
        Routing topK = model().forward(Graph.inference(), tokens, 2, null).moe().getFirst().routing();
        int[] first = RoutingAnalysis.firstChoices(topK);
        for (int t = 0; t < first.length; t++) {
            assertEquals(topK.choices()[t * topK.k()], first[t]);
        }
        Routing soft = model("router", "soft").forward(Graph.inference(), tokens, 2, null).moe().getFirst().routing();
        int[] softFirst = RoutingAnalysis.firstChoices(soft);
        float[] p = soft.probabilities();
        for (int t = 0; t < softFirst.length; t++) {
            for (int e = 0; e < soft.experts(); e++) {
                assertTrue(p[t * soft.experts() + e] <= p[t * soft.experts() + softFirst[t]]);
            }
        }
    }

    @Test
    void theAnalysisCountsEveryTokenOfEveryDomainOncePerLayer() {
        Transformer model = model();
        var a = RoutingAnalysis.analyse(model, data.tokenizer(), data.validation(),
                new RoutingAnalysis.Options(16, 4, 200, 12));
        assertEquals(List.of("prose", "code"), names(a.path("domains").path("names")));
        int layers = model.moeLayerIndices().size();
        int analysed = a.path("tokens").asInt();
        assertEquals(layers, a.path("domains").path("counts").size());
        for (int l = 0; l < layers; l++) {
            assertEquals(analysed, sum(a.path("domains").path("counts").get(l)));
            assertEquals(analysed, sum(a.path("token_types").path("counts").get(l)));
            JsonNode s = a.path("specialisation").get(l);
            double mi = s.path("mi_domain_bits").asDouble();
            assertTrue(mi >= 0 && mi <= 1 + 1e-9, "two domains carry at most one bit: " + mi);
            assertTrue(mi <= s.path("expert_entropy_bits").asDouble() + 1e-9);
            double rate = s.path("same_expert_next_token").asDouble();
            assertTrue(rate >= 0 && rate <= 1);
        }
        // Each domain's passage: its tokens' texts in order, with an expert per token and layer.
        JsonNode passage = a.path("passages").get(1);
        assertEquals("code", passage.path("domain").asText());
        var text = new StringBuilder();
        passage.path("tokens").forEach(t -> text.append(t.asText()));
        assertTrue(text.toString().startsWith("    int x"), text.toString());
        assertEquals(layers, passage.path("experts").size());
        assertEquals(12, passage.path("experts").get(0).size());
        assertEquals(12, passage.path("tokens").size());
        assertNotEquals(0, a.path("router_z").get(0).asDouble());
    }

    private static List<String> names(JsonNode array) {
        var out = new java.util.ArrayList<String>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    private static long sum(JsonNode cube) {
        long s = 0;
        for (JsonNode row : cube) {
            for (JsonNode v : row) {
                s += v.asLong();
            }
        }
        return s;
    }
}
