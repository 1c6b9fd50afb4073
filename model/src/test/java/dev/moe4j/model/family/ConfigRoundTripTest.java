package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.Resources;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.loss.SwitchLoss;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** A ModelConfig saved as its family's config.json reads back as the same ModelConfig. */
class ConfigRoundTripTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"fixtures/mixtral/config.json", "fixtures/mixtral-bf16-sharded/config.json",
            "fixtures/qwen2-moe/config.json", "fixtures/qwen3-moe/config.json", "fixtures/olmoe/config.json",
            "fixtures/deepseek-v3/config.json", "fixtures/gpt-oss/config.json",
            "published/mixtral-8x7b.json", "published/qwen3-30b-a3b.json", "published/olmoe-1b-7b-0924.json",
            "published/deepseek-v3.json", "published/gpt-oss-120b.json", "published/qwen1.5-moe-a2.7b.json"})
    void savedConfigReadsBackUnchanged(String resource) {
        ModelConfig original = HfFamilies.load(Resources.path(resource));
        // The families do not write a quantisation method: moe4j saves the weights it holds, unquantised.
        ModelConfig expected = original.toBuilder().quantization(null).build();
        Path file = dir.resolve("config.json");
        HfFamilies.save(original, file);
        assertEquals(expected, HfFamilies.load(file));
        ObjectNode written = (ObjectNode) Json.read(file);
        assertTrue(written.has("rope_theta") && !written.has("rope_parameters"), "the form every loader reads");
        assertEquals(original.family(), written.get("model_type").asText());
    }

    @Test
    void aConfigBuiltInCodeSavesAsMixtral() {
        ModelConfig config = ModelConfig.builder().family("mixtral").vocabSize(100).hiddenSize(32)
                .attention(AttentionConfig.Standard.of(4, 2, 8)).moeLayers(3)
                .moe(MoeConfig.builder(32, 48, 4, 2).normalizeTopK(true)
                        .loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.01).build()).build();
        Path file = dir.resolve("config.json");
        HfFamilies.save(config, file);
        assertEquals(config.toBuilder().tokens(config.tokens()).build(), HfFamilies.load(file));
    }

    /** moe4j's own format spells out every option of the model and its MoE layers, so anything round-trips. */
    @Test
    void moe4jsOwnFormatKeepsEveryMoeOption() {
        var base = MoeConfig.builder(32, 24, 6, 2).seed(7);
        var variants = java.util.List.of(
                base.build(),
                MoeConfig.builder(32, 24, 6, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.vmoeFactor(1.5)).thresholdMomentum(0.2)
                        .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.BATCH_TOP_C).build(),
                MoeConfig.builder(32, 24, 6, 2).router(dev.moe4j.moe.RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.vmoeFactor(2.0))
                        .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.PREDICTOR)
                        .predictor(new dev.moe4j.moe.router.PredictorOptions(0, false, 3, 0.25)).build(),
                MoeConfig.builder(32, 24, 6, 2).router(dev.moe4j.moe.RouterKind.SOFT).slotsPerExpert(3)
                        .softNormalize(false).ffn(dev.moe4j.moe.expert.ExpertFfn.plain(dev.moe4j.core.kernels.Activation.RELU)).build(),
                MoeConfig.builder(32, 24, 6, 3).scoring(dev.moe4j.moe.router.Scoring.SIGMOID).selectionBias(true)
                        .groupLimit(dev.moe4j.moe.router.GroupLimit.deepSeekV3(3, 2)).routedScalingFactor(2.5)
                        .noise(dev.moe4j.moe.router.Noise.learnedGaussian())
                        .capacity(Capacity.switchFactor(1.25).withMinimum(2))
                        .overflow(dev.moe4j.moe.dispatch.Overflow.NEXT_CHOICE)
                        .priority(dev.moe4j.moe.dispatch.Priority.SCORE).sharedExpert(16, true).routerBias(true)
                        .loss(new dev.moe4j.moe.loss.LoadLoss(dev.moe4j.moe.loss.LoadLoss.Threshold.KTH_NOISY), 0.1)
                        .loss(new dev.moe4j.moe.loss.RouterZLoss(), 1e-3).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.02)
                        .loss(new dev.moe4j.moe.loss.SequenceLoss(), 1e-4).build(),
                MoeConfig.builder(32, 24, 6, 2).gateOrder(dev.moe4j.moe.router.GateOrder.TOP_K_THEN_SOFTMAX)
                        .noise(dev.moe4j.moe.router.Noise.jitter(0.05)).expertBias(true)
                        .ffn(dev.moe4j.moe.expert.ExpertFfn.clampedSwiglu(1.702f, 7f))
                        .loss(new dev.moe4j.moe.loss.ImportanceLoss(dev.moe4j.moe.loss.ImportanceLoss.Of.NOISY_SOFTMAX), 0.5).build());
        for (MoeConfig moe : variants) {
            ModelConfig config = ModelConfig.builder().vocabSize(100).hiddenSize(32)
                    .attention(new AttentionConfig.Standard(4, 2, 8, true, true, java.util.OptionalDouble.of(8), true))
                    .norms(new dev.moe4j.model.config.NormConfig(1e-5, dev.moe4j.model.config.QkNorm.PER_HEAD))
                    .moeLayers(3).denseLayers(40, 0).moe(moe).tieEmbeddings(true).maxPositions(64)
                    .layers(java.util.List.of(new dev.moe4j.model.config.LayerSpec(false, 4),
                            dev.moe4j.model.config.LayerSpec.moeLayer(), new dev.moe4j.model.config.LayerSpec(true, 8)))
                    .tokens(new dev.moe4j.model.config.SpecialTokens(java.util.OptionalInt.of(1), java.util.List.of(0),
                            java.util.OptionalInt.empty()))
                    .build();
            assertEquals(ModelConfig.CUSTOM_FAMILY, config.family());
            Path file = dir.resolve("config.json");
            HfFamilies.save(config, file);
            assertEquals(config, HfFamilies.load(file), moe.toString());
        }
    }

    @Test
    void aFamilyRefusesWhatItsConfigCannotExpress() {
        ModelConfig deepseek = HfFamilies.load(Resources.path("fixtures/deepseek-v3/config.json"));
        var e = assertThrows(BadInputException.class, () -> HfFamilies.toJson(deepseek, "mixtral"));
        assertTrue(e.getMessage().startsWith("cannot save as mixtral: "), e.getMessage());
        ModelConfig qwen2 = HfFamilies.load(Resources.path("fixtures/qwen2-moe/config.json"));
        assertThrows(BadInputException.class, () -> HfFamilies.toJson(qwen2, "olmoe"));
        assertThrows(BadInputException.class, () -> HfFamilies.toJson(qwen2, "llama"));
        // MoE options that no config.json has a field for are refused, not dropped.
        ModelConfig capped = qwen2.toBuilder().moe(qwen2.moe().orElseThrow().toBuilder()
                .capacity(Capacity.switchFactor(1.25)).build()).build();
        var capacity = assertThrows(BadInputException.class, () -> HfFamilies.toJson(capped));
        assertTrue(capacity.getMessage().contains("expert capacity"), capacity.getMessage());
    }
}
