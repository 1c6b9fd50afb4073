package dev.moe4j.model.family;

import dev.moe4j.core.DType;
import dev.moe4j.model.Resources;
import dev.moe4j.model.config.Activation;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;
import dev.moe4j.model.config.RopeConfig;
import dev.moe4j.model.config.RouterConfig;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.*;

/** Each family maps the fields of its config.json, in both the transformers 5 and the published (4.x) forms. */
class FamilyMappingTest {
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
        var moe = c.moe().orElseThrow();
        assertEquals(List.of(8, 2, 96), List.of(moe.numExperts(), moe.topK(), moe.expertIntermediateSize()));
        assertEquals(new RouterConfig(RouterConfig.Scoring.SOFTMAX, RouterConfig.Order.SCORE_THEN_TOP_K, true, false,
                1, 1, 1.0, false, 0.0, 0.02), moe.router());
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
        var moe = c.moe().orElseThrow();
        assertEquals(List.of(8, 4, 48, 1, 96), List.of(moe.numExperts(), moe.topK(), moe.expertIntermediateSize(),
                moe.numSharedExperts(), moe.sharedIntermediateSize()));
        assertTrue(moe.sharedExpertGate());
        assertFalse(moe.router().renormalize());
        assertEquals(0.01, moe.router().auxLossCoef());
    }

    @Test
    void qwen3MoeNormalisesEachQueryAndKeyHeadAndReadsTheLocalExpertsAlias() {
        var c = fixture("qwen3-moe"); // transformers 5 writes num_local_experts and head_dim
        assertEquals(AttentionConfig.Standard.of(4, 2, 24), c.attention());
        assertEquals(QkNorm.PER_HEAD, c.norms().qkNorm());
        assertEquals(16, c.moe().orElseThrow().numExperts());
        assertTrue(c.moe().orElseThrow().router().renormalize());

        var real = published("qwen3-30b-a3b"); // num_experts, rope_scaling null
        assertEquals(128, real.moe().orElseThrow().numExperts());
        assertEquals(AttentionConfig.Standard.of(32, 4, 128), real.attention());
        assertEquals(new dev.moe4j.model.config.SpecialTokens(OptionalInt.of(151643), List.of(151645),
                OptionalInt.empty()), real.tokens());
    }

    @Test
    void olmoeNormalisesTheWholeProjectionsWithoutRenormalisingRoutes() {
        var c = fixture("olmoe");
        assertEquals(QkNorm.WHOLE_PROJECTION, c.norms().qkNorm());
        assertEquals(AttentionConfig.Standard.of(4, 2, 16), c.attention()); // clip_qkv null
        assertFalse(c.moe().orElseThrow().router().renormalize());
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
        var moe = c.moe().orElseThrow();
        assertEquals(List.of(16, 4, 32, 1, 32), List.of(moe.numExperts(), moe.topK(), moe.expertIntermediateSize(),
                moe.numSharedExperts(), moe.sharedIntermediateSize()));
        assertEquals(new RouterConfig(RouterConfig.Scoring.SIGMOID, RouterConfig.Order.SCORE_THEN_TOP_K, true, true,
                4, 2, 2.5, false, 0.0, 0.0), moe.router());
        assertEquals(1, c.mtpLayers());

        var real = published("deepseek-v3");
        assertEquals(new RopeConfig.Yarn(40, OptionalInt.of(4096), 32, 1, OptionalDouble.of(1.0),
                OptionalDouble.of(1.0), OptionalDouble.empty(), true), real.rope().scaling());
        assertEquals(163840, real.maxPositions());
        assertEquals(3, real.denseLayerIndices().size());
        assertEquals(0.001, real.moe().orElseThrow().router().auxLossCoef());
        assertEquals("fp8", real.quantization().orElseThrow());
    }

    @Test
    void gptOssAlternatesSlidingAndFullAttentionWithSinksBiasesAndYarn() {
        var c = fixture("gpt-oss");
        var a = (AttentionConfig.Standard) c.attention();
        assertTrue(a.sinks() && a.qkvBias() && a.outputBias());
        assertEquals(List.of(new LayerSpec(true, 4), new LayerSpec(true, 0)), c.layers());
        var moe = c.moe().orElseThrow();
        assertTrue(moe.expertBias() && moe.router().bias());
        assertEquals(RouterConfig.Order.TOP_K_THEN_SCORE, moe.router().order());
        assertEquals(Activation.clampedSwiglu(1.702, 7.0), c.activation());
        assertEquals(150_000.0, c.rope().theta());
        assertEquals(new RopeConfig.Yarn(32, OptionalInt.of(4096), 32, 1, OptionalDouble.empty(),
                OptionalDouble.empty(), OptionalDouble.empty(), false), c.rope().scaling());

        var real = published("gpt-oss-120b"); // rope_theta + rope_scaling form
        assertEquals(c.rope().scaling(), real.rope().scaling());
        assertEquals(128, real.layers().getFirst().slidingWindow());
        assertEquals(0, real.layers().get(1).slidingWindow());
        assertEquals(0.9, real.moe().orElseThrow().router().auxLossCoef());
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
