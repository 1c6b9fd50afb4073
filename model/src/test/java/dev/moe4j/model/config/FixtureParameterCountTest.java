package dev.moe4j.model.config;

import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.model.Resources;
import dev.moe4j.model.family.HfFamilies;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The count from config.json alone equals the sum of the tensor sizes transformers saved for each fixture model,
 * in total and per component (tensors sorted into components by their names).
 */
class FixtureParameterCountTest {
    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "mixtral-bf16-sharded", "qwen2-moe", "qwen3-moe", "olmoe", "deepseek-v3",
            "gpt-oss"})
    void countFromTheConfigEqualsTheSavedTensors(String name) {
        Path dir = Resources.fixture(name);
        ParameterCount count = ParameterCount.of(HfFamilies.load(dir.resolve("config.json")));
        Map<String, Long> saved = savedByComponent(dir);

        assertEquals(saved.values().stream().mapToLong(Long::longValue).sum(), count.total(), "total");
        var expected = new TreeMap<String, Long>();
        expected.put("embeddings", count.embeddings());
        expected.put("lmHead", count.lmHead());
        expected.put("attention", count.attention());
        expected.put("norms", count.norms());
        expected.put("router", count.router());
        expected.put("routedExperts", count.routedExperts());
        expected.put("sharedExperts", count.sharedExperts());
        expected.put("denseMlps", count.denseMlps());
        expected.values().removeIf(v -> v == 0);
        assertEquals(expected, saved);
    }

    private static Map<String, Long> savedByComponent(Path dir) {
        var out = new TreeMap<String, Long>();
        try (Checkpoint checkpoint = Checkpoint.open(dir)) {
            for (String name : checkpoint.names()) {
                out.merge(component(name), checkpoint.entry(name).elementCount(), Long::sum);
            }
        }
        return out;
    }

    /** Which component a tensor of transformers' checkpoint layout belongs to, by its name. */
    private static String component(String name) {
        if (name.contains("embed_tokens")) {
            return "embeddings";
        }
        if (name.startsWith("lm_head")) {
            return "lmHead";
        }
        if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) {
            return "norms";
        }
        if (name.contains("self_attn.")) {
            return "attention";
        }
        if (name.contains(".gate.weight") || name.contains(".gate.e_score_correction_bias")
                || name.contains(".router.")) {
            return "router";
        }
        if (name.contains("shared_expert")) {
            return "sharedExperts";
        }
        if (name.contains(".experts.")) {
            return "routedExperts";
        }
        if (name.contains(".mlp.")) {
            return "denseMlps";
        }
        throw new IllegalArgumentException("unclassified tensor " + name);
    }
}
