package dev.moe4j.model.config;

import dev.moe4j.model.Resources;
import dev.moe4j.model.family.HfFamilies;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.math.RoundingMode;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The total and active parameter counts of released models, computed from their published config.json alone,
 * against the figures their model cards state. Each card rounds its own way; the test says which, per model.
 */
class PublishedParameterCountTest {
    private static ParameterCount count(String name) {
        return ParameterCount.of(HfFamilies.load(Resources.published(name)));
    }

    /** Billions, rounded half-up to {@code digits} decimals, as a card would print them. */
    private static String rounded(long parameters, int digits) {
        return BigDecimal.valueOf(parameters, 9).setScale(digits, RoundingMode.HALF_UP).toPlainString();
    }

    /** Billions cut (not rounded) to {@code digits} decimals. */
    private static String truncated(long parameters, int digits) {
        return BigDecimal.valueOf(parameters, 9).setScale(digits, RoundingMode.DOWN).toPlainString();
    }

    @Test
    void mixtral8x7bHas46point7BTotalAnd12point9BActive() {
        var c = count("mixtral-8x7b");
        assertEquals("46.7", rounded(c.total(), 1));
        assertEquals("12.9", rounded(c.active(), 1));
    }

    @Test
    void qwen3_30bA3bHas30point5BTotalAnd3point3BActive() {
        var c = count("qwen3-30b-a3b");
        assertEquals("30.5", rounded(c.total(), 1));
        // Qwen's card cuts: the count with both embedding matrices is 3.35B, printed as 3.3B. Without the
        // embeddings it would be 3.04B, so the card does count them.
        assertEquals("3.3", truncated(c.active(), 1));
        assertEquals("3.35", rounded(c.active(), 2));
        // The card's non-embedding total: 29.9B.
        assertEquals("29.9", rounded(c.total() - c.embeddings() - c.lmHead(), 1));
    }

    @Test
    void olmoe1b7bHas6point9BTotalAnd1point3BActive() {
        var c = count("olmoe-1b-7b-0924");
        assertEquals("6.9", rounded(c.total(), 1));
        assertEquals("1.3", rounded(c.active(), 1));
    }

    @Test
    void deepseekV3Has671BTotalAnd37BActiveWithoutTheMtpModule() {
        var config = HfFamilies.load(Resources.published("deepseek-v3"));
        assertEquals(1, config.mtpLayers(), "the config declares one MTP module, which is not counted");
        var c = ParameterCount.of(config);
        assertEquals("671", rounded(c.total(), 0));
        // DeepSeek's 37B: our count with both embeddings is 37.55B, which the report cuts to 37B.
        assertEquals("37", truncated(c.active(), 0));
    }

    @Test
    void gptOss120bMatchesTheModelCardTableWithActiveCountedWithoutTheEmbedding() {
        var c = count("gpt-oss-120b");
        assertEquals("116.83", rounded(c.total(), 2));
        // The card counts the unembedding as active but not the embedding lookup.
        assertEquals("5.13", rounded(c.activeWithoutInputEmbedding(), 2));
        assertEquals("114.71", rounded(c.router() + c.routedExperts(), 2), "card: MLP 114.71B");
        assertEquals("0.96", rounded(c.attention(), 2), "card: attention 0.96B");
        assertEquals("1.16", rounded(c.embeddings() + c.lmHead(), 2), "card: embed + unembed 1.16B");
    }

    @Test
    void qwen15MoeA2point7bHas14point3BTotalAnd2point7BActive() {
        var c = count("qwen1.5-moe-a2.7b");
        assertEquals("14.3", rounded(c.total(), 1));
        assertEquals("2.7", rounded(c.active(), 1));
    }
}
