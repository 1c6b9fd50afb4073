package dev.moe4j.model.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.testing.GradCheck;
import dev.moe4j.core.testing.RandomTensors;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VisionTransformerTest {
    /** 4 × 4 images in 2 × 2 patches (4 a image), width 4, two layers: small enough for finite differences. */
    private static VisionConfig tiny(Optional<MoeConfig> moe) {
        return new VisionConfig(4, 1, 2, 4, 2, 2, 8, 3, moe.isPresent() ? 2 : 0, moe, 1e-6, 0.3, 7);
    }

    private static MoeConfig.Builder experts(int count, int k) {
        return MoeConfig.builder(4, 3, count, k).ffn(ExpertFfn.plain(Activation.GELU));
    }

    private static Tensor images(int n, long seed) {
        return RandomTensors.normal(new Random(seed), n, 16);
    }

    private static void checkEveryGradient(VisionConfig config) {
        var model = new VisionTransformer(config);
        // A step of 3e-3: a whole model is curved enough that 1e-2's truncation error passes 1 % on the patch
        // embedding (measured: the error falls with the square of the step, a truncation error, not a wrong term).
        Tensor x = images(3, 11);
        GradCheck.check(g -> model.forward(g, x).logits(), List.copyOf(model.parameters().values()), 21, 3e-3);
    }

    @Test
    void denseVitGradientsMatchFiniteDifferences() {
        checkEveryGradient(tiny(Optional.empty()));
    }

    @Test
    void softMoeVitGradientsMatchFiniteDifferences() {
        checkEveryGradient(tiny(Optional.of(experts(2, 1).router(RouterKind.SOFT).slotsPerExpert(2).build())));
    }

    @Test
    void denselyRoutedMoeVitGradientsMatchFiniteDifferences() {
        // Every expert on every patch: the gate weights are smooth in the router, so differences are exact enough.
        checkEveryGradient(tiny(Optional.of(experts(2, 2).router(RouterKind.DENSE).build())));
    }

    @Test
    void anImageIsClassifiedTheSameAloneOrInABatchWithoutCapacity() {
        var model = new VisionTransformer(tiny(Optional.of(experts(4, 2).build())));
        Tensor batch = images(3, 5);
        Tensor together = model.forward(Graph.inference(), batch).logits().value();
        Tensor alone = model.forward(Graph.inference(), batch.slice(1, 2).copy()).logits().value();
        for (int c = 0; c < 3; c++) {
            assertEquals(alone.get(0, c), together.get(1, c), 1e-5);
        }
    }

    @Test
    void patchesAreCutRowMajorWithinAndAcrossTheGrid() {
        var config = tiny(Optional.empty());
        float[] pixels = new float[16];
        for (int i = 0; i < 16; i++) {
            pixels[i] = i;
        }
        Tensor p = Patches.of(Tensor.of(pixels, 1, 16), config);
        assertArrayEquals(new float[] {0, 1, 4, 5}, p.slice(0, 1).toFloatArray());
        assertArrayEquals(new float[] {2, 3, 6, 7}, p.slice(1, 2).toFloatArray());
        assertArrayEquals(new float[] {10, 11, 14, 15}, p.slice(3, 4).toFloatArray());
    }

    @Test
    void moeLayersSitInEveryOtherLayerAsVmoePlacesThem() {
        var config = new VisionConfig(4, 1, 2, 4, 4, 2, 8, 3, 2, Optional.of(experts(4, 2).build()), 1e-6, 0.5, 7);
        var pass = new VisionTransformer(config).forward(Graph.inference(), images(2, 3));
        assertEquals(List.of(1, 3), pass.moeLayers());
    }

    @Test
    void aLowerCapacityAtInferenceDropsPatchesAndPriorityChoosesWhich() {
        var model = new VisionTransformer(tiny(Optional.of(experts(4, 1).build())));
        Tensor x = images(8, 9);
        var half = new RoutingPolicy(0, 0, 0, 0, 0, List.of(), List.of(), Capacity.factor(0.5, Capacity.Rounding.CEIL, 1),
                Overflow.DROP, Priority.SCORE);
        var byPosition = new RoutingPolicy(0, 0, 0, 0, 0, List.of(), List.of(),
                Capacity.factor(0.5, Capacity.Rounding.CEIL, 1), Overflow.DROP, Priority.POSITION);
        int patches = 8 * 4;
        var score = model.forward(Graph.inference(), x, half).moe().getFirst().parts().getFirst();
        var position = model.forward(Graph.inference(), x, byPosition).moe().getFirst().parts().getFirst();
        assertTrue(score.routing().dispatch().rows() <= patches / 2 + 4, "at most half the patches processed");
        assertNotEquals(List.of(score.routing().dispatch().token()), List.of(position.routing().dispatch().token()));
    }

    @Test
    void aSavedModelLoadsWithTheSameLogits(@TempDir Path dir) {
        var config = tiny(Optional.of(experts(4, 2).router(RouterKind.EXPERT_CHOICE).capacity(Capacity.factor(1,
                Capacity.Rounding.CEIL, 1)).expertChoiceDecode(ExpertChoiceDecode.BATCH_TOP_C).build()));
        var model = new VisionTransformer(config);
        Tensor x = images(2, 4);
        VisionModelFolder.save(model, new VisionModelFolder.Preprocessing(List.of("a", "b", "c"), 0.25f, 0.5f),
                dir.resolve("m"));
        var loaded = VisionModelFolder.load(dir.resolve("m"));
        assertEquals(config, loaded.model().config());
        assertEquals(new VisionModelFolder.Preprocessing(List.of("a", "b", "c"), 0.25f, 0.5f), loaded.preprocessing());
        assertArrayEquals(model.forward(Graph.inference(), x).logits().value().toFloatArray(),
                loaded.model().forward(Graph.inference(), x).logits().value().toFloatArray());
    }

    @Test
    void aModelFolderOfAnotherConfigIsRefusedNamingTheTensor(@TempDir Path dir) throws Exception {
        VisionModelFolder.save(new VisionTransformer(tiny(Optional.empty())),
                new VisionModelFolder.Preprocessing(List.of("a", "b", "c"), 0, 1), dir.resolve("m"));
        Path config = dir.resolve("m/config.json");
        Files.writeString(config, Files.readString(config).replaceFirst("\"intermediate_size\"\\s*:\\s*8", "\"intermediate_size\": 6"));
        var e = assertThrows(BadInputException.class, () -> VisionModelFolder.load(dir.resolve("m")));
        assertTrue(e.getMessage().contains("mlp.up_proj.weight") && e.getMessage().contains("[6, 4]"), e.getMessage());
    }
}
