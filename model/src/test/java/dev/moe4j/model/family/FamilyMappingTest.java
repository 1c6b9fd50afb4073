package dev.moe4j.model.family;

import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.SequenceLoss;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.GateOrder;
import dev.moe4j.moe.router.GroupLimit;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.model.Resources;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.*;

/** Each family maps the fields of its config.json, in both the transformers 5 and the published (4.x) forms. */
class FamilyMappingTest {
    private static final SwitchLoss TRANSFORMERS_LOSS = new SwitchLoss(SwitchLoss.Form.TRANSFORMERS);

    private static ModelConfig fixture(String name) {
        return HfFamilies.load(Resources.fixture(name).resolve("config.json"));
    }

    private static ModelConfig published(String name) {
        return HfFamilies.load(Resources.published(name));
    }

    @Test
    void mixtralRoutesSoftmaxTopKRenormalisedWithGroupedQueryAttention() {
        var c = fixture("mixtral");
        assertEquals("mixtral", c.family());
        assertEquals(AttentionConfig.Standard.of(4, 2, 16), c.attention()); // head_dim null -> 64 / 4
        assertEquals(1_000_000.0, c.rope().theta()); // rope_parameters form
        assertEquals(MoeConfig.builder(64, 96, 8, 2).normalizeTopK(true).ffn(ExpertFfn.swiglu())
                .loss(TRANSFORMERS_LOSS, 0.02).build(), c.moe().orElseThrow());
        assertEquals(2, c.numMoeLayers());
        assertEquals(new dev.moe4j.model.config.SpecialTokens(OptionalInt.of(1), List.of(2), OptionalInt.empty()),
                c.tokens());
        assertEquals(DType.BF16, fixture("mixtral-bf16-sharded").dtype());

        var real = published("mixtral-8x7b"); // rope_theta form, torch_dtype
        assertEquals(1_000_000.0, real.rope().theta());
        assertEquals(new RopeConfig.None(), real.rope().scaling());
        assertEquals(DType.BF16, real.dtype());
        assertEquals(AttentionConfig.Standard.of(32, 8, 128), real.attention());
        assertEquals(32768, real.maxPositions());
    }

    @Test
    void qwen2MoeHasAGatedSharedExpertQkvBiasAndADenseLayer() {
        var c = fixture("qwen2-moe");
        var a = (AttentionConfig.Standard) c.attention();
        assertTrue(a.qkvBias());
        assertFalse(a.outputBias());
        assertEquals(List.of(LayerSpec.moeLayer(), LayerSpec.denseLayer(), LayerSpec.moeLayer()), c.layers());
        assertEquals(128, c.denseIntermediateSize());
        assertEquals(MoeConfig.builder(64, 48, 8, 4).sharedExpert(96, true).loss(TRANSFORMERS_LOSS, 0.01).build(),
                c.moe().orElseThrow());
    }

    @Test
    void qwen3MoeNormalisesEachQueryAndKeyHeadAndReadsTheLocalExpertsAlias() {
        var c = fixture("qwen3-moe"); // transformers 5 writes num_local_experts and head_dim
        assertEquals(AttentionConfig.Standard.of(4, 2, 24), c.attention());
        assertEquals(QkNorm.PER_HEAD, c.norms().qkNorm());
        assertEquals(MoeConfig.builder(64, 48, 16, 4).normalizeTopK(true).loss(TRANSFORMERS_LOSS, 0.001).build(),
                c.moe().orElseThrow());

        var real = published("qwen3-30b-a3b"); // num_experts, rope_scaling null
        assertEquals(128, real.moe().orElseThrow().experts());
        assertEquals(AttentionConfig.Standard.of(32, 4, 128), real.attention());
        assertEquals(new dev.moe4j.model.config.SpecialTokens(OptionalInt.of(151643), List.of(151645),
                OptionalInt.empty()), real.tokens());
    }

    @Test
    void olmoeNormalisesTheWholeProjectionsWithoutRenormalisingRoutes() {
        var c = fixture("olmoe");
        assertEquals(QkNorm.WHOLE_PROJECTION, c.norms().qkNorm());
        assertEquals(AttentionConfig.Standard.of(4, 2, 16), c.attention()); // clip_qkv null
        assertEquals(MoeConfig.builder(64, 48, 16, 4).loss(TRANSFORMERS_LOSS, 0.01).build(), c.moe().orElseThrow());
        assertEquals(OptionalInt.of(1), c.tokens().pad());
        assertEquals(List.of(0), c.tokens().eos());
        assertEquals(OptionalInt.empty(), c.tokens().bos());

        var clipped = HfFamilies.read(dev.moe4j.io.json.Json.parse("{\"model_type\":\"olmoe\",\"hidden_size\":64,"
                + "\"num_attention_heads\":4,\"num_hidden_layers\":1,\"num_experts\":4,\"num_experts_per_tok\":2,"
                + "\"vocab_size\":10,\"clip_qkv\":8}", "t"), "t");
        assertEquals(OptionalDouble.of(8), ((AttentionConfig.Standard) clipped.attention()).clipQkv());
    }

    @Test
    void deepseekV3UsesLatentAttentionAndGroupLimitedSigmoidRouting() {
        var c = fixture("deepseek-v3");
        assertEquals(new AttentionConfig.Latent(4, 48, 32, 16, 8, 16, false), c.attention());
        assertEquals(RopeConfig.Layout.INTERLEAVED, c.rope().layout());
        assertEquals(List.of(false, true, true), c.layers().stream().map(LayerSpec::moe).toList());
        assertEquals(128, c.denseIntermediateSize());
        assertEquals(MoeConfig.builder(64, 32, 16, 4).scoring(Scoring.SIGMOID).selectionBias(true)
                .groupLimit(GroupLimit.deepSeekV3(4, 2)).normalizeTopK(true).routedScalingFactor(2.5)
                .sharedExpert(32, false).build(), c.moe().orElseThrow()); // no aux_loss_alpha: no balance loss
        assertEquals(1, c.mtpLayers());

        var real = published("deepseek-v3");
        assertEquals(new RopeConfig.Yarn(40, OptionalInt.of(4096), 32, 1, OptionalDouble.of(1.0),
                OptionalDouble.of(1.0), OptionalDouble.empty(), true), real.rope().scaling());
        assertEquals(163840, real.maxPositions());
        assertEquals(3, real.denseLayerIndices().size());
        assertEquals(List.of(new dev.moe4j.moe.loss.LossTerm(new SequenceLoss(), 0.001)),
                real.moe().orElseThrow().losses());
        assertEquals(2048, real.moe().orElseThrow().sharedIntermediate()); // 1 shared expert of 2048
        assertEquals("fp8", real.quantization().orElseThrow());
    }

    @Test
    void gptOssAlternatesSlidingAndFullAttentionWithSinksBiasesAndYarn() {
        var c = fixture("gpt-oss");
        var a = (AttentionConfig.Standard) c.attention();
        assertTrue(a.sinks() && a.qkvBias() && a.outputBias());
        assertEquals(List.of(new LayerSpec(true, 4), new LayerSpec(true, 0)), c.layers());
        assertEquals(MoeConfig.builder(64, 48, 8, 2).gateOrder(GateOrder.TOP_K_THEN_SOFTMAX).routerBias(true)
                .expertBias(true).ffn(new ExpertFfn.Gated(new GluParams.Clamped(1.702f, 7f,
                        GluParams.Layout.INTERLEAVED))).loss(TRANSFORMERS_LOSS, 0.001).build(), c.moe().orElseThrow());
        assertEquals(150_000.0, c.rope().theta());
        assertEquals(new RopeConfig.Yarn(32, OptionalInt.of(4096), 32, 1, OptionalDouble.empty(),
                OptionalDouble.empty(), OptionalDouble.empty(), false), c.rope().scaling());

        var real = published("gpt-oss-120b"); // rope_theta + rope_scaling form
        assertEquals(c.rope().scaling(), real.rope().scaling());
        assertEquals(128, real.layers().getFirst().slidingWindow());
        assertEquals(0, real.layers().get(1).slidingWindow());
        assertEquals(0.9, real.moe().orElseThrow().losses().getFirst().coefficient());
        assertEquals("mxfp4", real.quantization().orElseThrow());
    }

    @Test
    void absentFieldsTakeTheFamilyDefaults() {
        var c = HfFamilies.read(dev.moe4j.io.json.Json.parse("{\"model_type\":\"gpt_oss\",\"hidden_size\":64,"
                + "\"num_attention_heads\":4,\"num_hidden_layers\":2,\"num_local_experts\":4,\"vocab_size\":10,"
                + "\"num_key_value_heads\":2}",
                "t"), "t");
        assertEquals(150_000.0, c.rope().theta());
        assertEquals("yarn", c.rope().scaling().type());
        assertEquals(64, ((AttentionConfig.Standard) c.attention()).headDim(), "head_dim default 64");
        assertEquals(128, c.layers().getFirst().slidingWindow());
        assertEquals(4, c.moe().orElseThrow().topK());
        assertEquals(DType.F32, c.dtype());
    }
}
