package dev.moe4j.model.route;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Pruning the fixture checkpoints of every family: the pruned folder loads, has the kept experts only, and computes
 * what the unpruned model computes with the removed experts masked; the measurements rank as they say.
 */
class ExpertPrunerTest {
    @TempDir
    Path dir;

    private static int[] ids(int vocab, int n, long seed) {
        return new SplittableRandom(seed).ints(n, 0, vocab).toArray();
    }

    private static float[] logits(TransformerModel model, int[] ids, RoutingPolicy policy) {
        return model.transformer().forward(Graph.inference(), ids, 1, null, policy).logits().value().toFloatArray();
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe", "qwen3-moe", "olmoe", "deepseek-v3", "gpt-oss"})
    void aPrunedModelEqualsTheModelWithItsRemovedExpertsMasked(String name) throws IOException {
        Path folder = Resources.fixture(name);
        Path out = dir.resolve(name + "-pruned");
        try (TransformerModel model = ModelLoader.load(folder, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            MoeConfig moe = model.config().moe().orElseThrow();
            int e = moe.experts();
            int keep = ExpertPruner.keepCount("0.75", e, moe.groupLimit().groups());
            assertEquals(e * 3 / 4, keep);
            var scores = ExpertPruner.measure(model, ids(model.config().vocabSize(), 96, 1), 32);
            var plan = ExpertPruner.plan(scores, keep, ExpertPruner.Rank.SALIENCY, moe);
            ExpertPruner.save(folder, plan, out);
            RoutingPolicy mask = plan.asMask(e);
            model.checkRouting(mask, RoutingPolicy.Naming.flags());
            try (TransformerModel pruned = ModelLoader.load(out, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
                MoeConfig p = pruned.config().moe().orElseThrow();
                assertEquals(keep, p.experts());
                assertEquals(Math.min(moe.topK(), keep), p.topK());
                int[] input = ids(model.config().vocabSize(), 24, 2);
                float[] expected = logits(model, input, mask), got = logits(pruned, input, RoutingPolicy.TRAINED);
                double diff = 0, max = 0;
                for (int i = 0; i < got.length; i++) {
                    diff = Math.max(diff, Math.abs(got[i] - expected[i]));
                    max = Math.max(max, Math.abs(expected[i]));
                }
                assertTrue(diff <= 1e-5 * max, name + ": pruned differs from masked by " + diff / max);
                assertFalse(Arrays.equals(expected, logits(model, input, RoutingPolicy.TRAINED)),
                        name + ": the mask changed nothing, so the test could not fail");
            }
            assertTrue(size(out) < size(folder), "a smaller checkpoint");
        }
    }

    private static long size(Path folder) throws IOException {
        try (Stream<Path> files = Files.list(folder)) {
            return files.filter(f -> f.toString().endsWith(".safetensors")).mapToLong(f -> f.toFile().length()).sum();
        }
    }

    @Test
    void measurementsCountEveryRoutedTokenAndRankAsTheySay() {
        try (TransformerModel model = ModelLoader.load(Resources.fixture("mixtral"), CpuBackend.INSTANCE,
                WeightMemory.MAPPED)) {
            MoeConfig moe = model.config().moe().orElseThrow();
            var scores = ExpertPruner.measure(model, ids(model.config().vocabSize(), 80, 3), 40);
            for (var s : scores) {
                assertEquals(80, s.routed());
                assertEquals(80L * moe.topK(), Arrays.stream(s.tokens()).sum(), "every token takes k experts");
                for (int x = 0; x < moe.experts(); x++) {
                    assertEquals(s.tokens()[x] > 0, s.saliency()[x] > 0, "expert " + x);
                }
            }
            var byUse = ExpertPruner.plan(scores, 3, ExpertPruner.Rank.USE, moe);
            for (var s : scores) {
                int[] kept = byUse.kept().get(s.layer());
                long least = Arrays.stream(kept).mapToLong(x -> s.tokens()[x]).min().orElseThrow();
                for (int x = 0; x < moe.experts(); x++) {
                    if (Arrays.binarySearch(kept, x) < 0) {
                        assertTrue(s.tokens()[x] <= least, "a removed expert was used more than a kept one");
                    }
                }
            }
        }
    }

    @Test
    void groupsKeepEqualShares() {
        try (TransformerModel model = ModelLoader.load(Resources.fixture("deepseek-v3"), CpuBackend.INSTANCE,
                WeightMemory.MAPPED)) {
            MoeConfig moe = model.config().moe().orElseThrow(); // 16 experts in 4 groups
            var plan = ExpertPruner.plan(ExpertPruner.measure(model, ids(model.config().vocabSize(), 40, 4), 40), 8,
                    ExpertPruner.Rank.SALIENCY, moe);
            for (int[] kept : plan.kept().values()) {
                int[] perGroup = new int[4];
                for (int x : kept) {
                    perGroup[x / 4]++;
                }
                assertArrayEquals(new int[] {2, 2, 2, 2}, perGroup);
            }
            assertEquals("--keep 0.3: 5 experts do not split over the model's 4 expert groups (n_group); keep a"
                    + " multiple of 4", assertThrows(BadInputException.class,
                    () -> ExpertPruner.keepCount("0.3", 16, 4)).getMessage());
        }
        assertEquals("--keep 9: keeps 9 experts per layer; the model has 8 (keep 1 to 8)",
                assertThrows(BadInputException.class, () -> ExpertPruner.keepCount("9", 8, 1)).getMessage());
        assertEquals("--keep 1.5: expected a fraction in (0, 1) or a whole number of experts",
                assertThrows(BadInputException.class, () -> ExpertPruner.keepCount("1.5", 8, 1)).getMessage());
    }
}
